// Package devnet runs `califusiond devnet`: a local CaliFusion network of real daemons (one
// publisher, N coordinators and M trainers) on loopback, the story it tells, and devnet.json, which
// lets the CLI and the API drive every node while it stays up (--keep). The daemons run through
// node/nodeproc; the ICP replica and the Calimero nodes are the in-process emulators
// protocols/icp/icptest and protocols/calimero/calimerotest. The digits dataset of the story is
// embedded from data/ (data.go). The story's training is one campaign whose rounds the trainers
// join by themselves (train.auto); the devnet follows it and only configures, starts and stops
// nodes (campaign.go, gate.go).
package devnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/nodeproc"
	"github.com/califusion/califusion/protocols/calimero/calimerotest"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

// Options configure a devnet run.
type Options struct {
	Bin      string // califusiond binary to run the nodes with
	Dir      string // datadirs and devnet.json; empty: a new temporary directory
	Trainers int
	Rounds   int
	Keep     bool
	JSON     bool
	Ledger   string // "icp" (default: the ICP ledger itself, as the default configuration) or "icrc" (an ICRC-3 ledger)
	// Coordinators is how many coordinator nodes the lineage names (default 3); Threshold how
	// many of them must release their share of a key to unlock it (default 2). With more
	// coordinators than the threshold, the story kills the campaign's first coordinator once it
	// opened round 2 (another adopts the campaign).
	Coordinators int
	Threshold    int
	// Plain runs plain rounds: the coordinator sees each update. By default the rounds are
	// secure (SecAgg+) when there are at least MinSecureTrainers trainers.
	Plain bool
}

// File is the content of <dir>/devnet.json (shared/API.md).
type File struct {
	Nodes    []NodeEntry `json:"nodes"`
	ICP      *ICPEntry   `json:"icp"`
	Calimero *CalEntry   `json:"calimero"`
}

// NodeEntry describes one node in devnet.json.
type NodeEntry struct {
	Name    string   `json:"name"`
	Roles   []string `json:"roles"`
	Datadir string   `json:"datadir"`
	RPCAddr string   `json:"rpc_addr"`
	PeerID  string   `json:"peer_id"`
	// Additions: the node's p2p listen multiaddrs (with /p2p/<peer ID>, ready for `node
	// connect` or --bootstrap) and the URL of the Calimero node it anchors through.
	P2PAddrs    []string `json:"p2p_addrs,omitempty"`
	CalimeroURL string   `json:"calimero_url,omitempty"`
}

// ICPEntry locates the emulated ICP replica.
type ICPEntry struct {
	URL              string `json:"url"`
	LedgerCanisterID string `json:"ledger_canister_id"`
	LedgerKind       string `json:"ledger_kind,omitempty"` // icp or icrc3
}

// CalEntry locates the emulated Calimero node.
type CalEntry struct {
	URL       string `json:"url"`
	ContextID string `json:"context_id"`
}

// Report is what the story found, printed as a table or as JSON.
type Report struct {
	Dir      string          `json:"dir"`
	Nodes    []NodeReport    `json:"nodes"`
	Model    *ModelReport    `json:"model,omitempty"`
	Training *TrainingReport `json:"training,omitempty"`
	// Campaign summarises the campaign the training ran as (campaign.go).
	Campaign *CampaignReport `json:"campaign,omitempty"`
	Timings  Timings         `json:"timings"`
	// Metrics: per node, the change of the headline series of its /metrics during the story
	// (MetricDeltas, HeadlineMetrics).
	Metrics MetricDeltas `json:"metrics,omitempty"`
}

// ModelReport tells how the initial model was published and spread.
type ModelReport struct {
	ModelID string `json:"model_id"`
	Size    uint64 `json:"size"`
	Chunks  uint64 `json:"chunks"`
	// Anchored says the publisher anchored the manifest in Calimero; AnchorVerifiedBy counts
	// the trainers that read it back and verified it.
	Anchored         bool          `json:"anchored"`
	AnchorVerifiedBy int           `json:"anchor_verified_by"`
	Fetches          []FetchReport `json:"fetches"`
}

// FetchReport is one trainer's fetch, payment and export of the initial model.
type FetchReport struct {
	Node      string  `json:"node"`
	Seconds   float64 `json:"seconds"`
	Paid      string  `json:"paid"`
	PaidBlock uint64  `json:"paid_block"`
	ExportOK  bool    `json:"export_ok"`
}

// NodeReport is one node's line in the report.
type NodeReport struct {
	NodeEntry
	Peers   int    `json:"peers"`
	Known   int    `json:"known"`
	Balance string `json:"balance"`
	// Additions: the balance as tokens, the ledger kind the node verifies payments with, and its
	// account identifier on the ICP ledger.
	BalanceTokens string `json:"balance_tokens,omitempty"`
	LedgerKind    string `json:"ledger_kind,omitempty"`
	AccountID     string `json:"account_id,omitempty"`
	// Stopped says the story killed the node (a coordinator, to show the network survives it);
	// Restarts counts the times the story restarted it (a trainer it made crash mid-round): its
	// metrics count from its last start.
	Stopped  bool `json:"stopped,omitempty"`
	Restarts int  `json:"restarts,omitempty"`
}

// DevnetFunds is what the devnet mints to every node's ledger account, in base units.
const DevnetFunds = 100_000_000_000

// Timings of the story's phases, in seconds.
type Timings struct {
	StartSeconds     float64 `json:"start_seconds"`
	DiscoverySeconds float64 `json:"discovery_seconds"`
	PublishSeconds   float64 `json:"publish_seconds"`
	FetchSeconds     float64 `json:"fetch_seconds"`
	UnlockSeconds    float64 `json:"unlock_seconds"`
	RoundsSeconds    float64 `json:"rounds_seconds"`
	FinalSeconds     float64 `json:"final_seconds"` // export, evaluation and release of the final version
	TotalSeconds     float64 `json:"total_seconds"`
}

// Run starts the network, tells the story, and stops it (or, with Keep, waits for ctx).
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) (err error) {
	if o.Trainers < 1 {
		return errors.New("--trainers must be at least 1")
	}
	if o.Rounds < 1 {
		return errors.New("--rounds must be at least 1")
	}
	if o.Coordinators == 0 {
		o.Coordinators = 3
	}
	if o.Threshold == 0 {
		o.Threshold = min(2, o.Coordinators)
	}
	if o.Coordinators < 1 || o.Coordinators > 16 {
		return errors.New("--coordinators must be 1 to 16")
	}
	if o.Threshold < 1 || o.Threshold > o.Coordinators {
		return fmt.Errorf("--threshold must be 1 to --coordinators (%d)", o.Coordinators)
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "califusion-devnet-"); err != nil {
			return err
		}
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return err
	}
	say := func(format string, args ...any) { fmt.Fprintf(stderr, "devnet: "+format+"\n", args...) }
	h := nodeproc.New(o.Bin, o.Dir)
	defer func() {
		say("stopping %d nodes", len(h.Nodes()))
		if serr := h.StopAll(); serr != nil && err == nil {
			err = serr
		}
	}()

	began := time.Now()
	// Calimero: two emulated merod members of one context, the trainers' member lagging the
	// coordinator's, as real replicas do.
	sim, err := calimerotest.New(calimerotest.Options{Nodes: 2, ReplicationDelay: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	defer sim.Close()
	calCtx := sim.CreateContext()
	say("calimero emulator: %s (coordinator) and %s (trainers), context %s", sim.Node(0).URL(), sim.Node(1).URL(), calCtx)
	// ICP: an emulated replica with one ledger, by default the ICP ledger itself (protobuf
	// blocks, no ICRC-3), with --ledger icrc an ICRC-1/ICRC-3 ledger; every node is funded.
	ledgerKind := "icp"
	switch o.Ledger {
	case "", "icp":
	case "icrc", "icrc3":
		ledgerKind = "icrc3"
	default:
		return fmt.Errorf("devnet: unknown --ledger %q: use icp or icrc", o.Ledger)
	}
	replica, err := icptest.New(icptest.Options{ICPLedger: ledgerKind == "icp"})
	if err != nil {
		return err
	}
	if err := replica.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer replica.Close()
	say("icp emulator: %s, ledger %s (%s)", replica.URL(), icptest.LedgerID, map[string]string{"icp": "the ICP ledger's own blocks", "icrc3": "ICRC-3"}[ledgerKind])
	calURL := map[string]string{} // node name → the Calimero node it uses
	useCalimero := func(n *nodeproc.Node, member int, policy string) error {
		m := sim.Node(member)
		calURL[n.Name] = m.URL()
		return n.EditConfig(func(cfg *config.Config) {
			cfg.Calimero = config.Calimero{Anchoring: policy, URL: m.URL(), ContextID: calCtx, ExecutorKey: m.Identity()}
			cfg.ICP = config.ICP{ReplicaURL: replica.URL(), LedgerCanisterID: icptest.LedgerID, FetchRootKey: true}
		})
	}

	say("starting 1 publisher, %d coordinators and %d trainers in %s", o.Coordinators, o.Trainers, o.Dir)
	pub, err := initNode(ctx, h, "publisher", []string{"publisher"})
	if err != nil {
		return err
	}
	if err := useCalimero(pub, 0, "prefer"); err != nil {
		return err
	}
	coords := make([]*nodeproc.Node, o.Coordinators)
	for i := range coords {
		if coords[i], err = initNode(ctx, h, fmt.Sprintf("coordinator%d", i+1), []string{"coordinator"}); err != nil {
			return err
		}
		if err := useCalimero(coords[i], 0, "prefer"); err != nil {
			return err
		}
	}
	trainers := make([]*nodeproc.Node, o.Trainers)
	for i := range trainers {
		if trainers[i], err = initNode(ctx, h, fmt.Sprintf("trainer%d", i+1), []string{"trainer"}); err != nil {
			return err
		}
		if err := useCalimero(trainers[i], 1, "require"); err != nil {
			return err
		}
	}
	data, err := prepareData(coords, trainers)
	if err != nil {
		return err
	}
	// The incidents of the story and the gate trainer that places them (gate.go): its first life
	// is configured before it starts.
	secure := !o.Plain && len(trainers) >= MinSecureTrainers
	kill := o.Coordinators > o.Threshold && o.Rounds >= 2
	drop := 0
	if secure && len(trainers) > MinSecureTrainers {
		drop = dropRound(o.Rounds)
	}
	plan := gatePlan(kill, drop)
	var gate *nodeproc.Node
	if plan != nil {
		gate = trainers[len(trainers)-1]
		if err := gate.EditConfig(func(c *config.Config) { c.Train.AutoPerHour = autoCap(plan[0].cap) }); err != nil {
			return err
		}
		gate.Env = plan[0].env()
	}
	if err := pub.Start(ctx); err != nil {
		return err
	}
	if err := startAll(ctx, append(append([]*nodeproc.Node(nil), coords...), trainers...), "--bootstrap", pub.P2PAddr()); err != nil {
		return err
	}
	started := time.Since(began)
	say("%d nodes up in %.1fs; writing %s", len(h.Nodes()), started.Seconds(), filepath.Join(o.Dir, "devnet.json"))
	for _, n := range h.Nodes() {
		p, err := principal.Decode(n.Info().ICPPrincipal)
		if err != nil {
			return err
		}
		replica.Mint(p, DevnetFunds)
	}
	if err := writeFile(o.Dir, h, calURL, &CalEntry{URL: sim.Node(0).URL(), ContextID: calCtx}, &ICPEntry{URL: replica.URL(), LedgerCanisterID: icptest.LedgerID, LedgerKind: ledgerKind}); err != nil {
		return err
	}
	scrapeBegan := time.Now()
	startScrape, err := scrapeAll(ctx, h.Nodes())
	if err != nil {
		return fmt.Errorf("scrape /metrics: %w", err)
	}
	say("scraped /metrics of %d nodes in %.1fms", len(h.Nodes()), float64(time.Since(scrapeBegan).Microseconds())/1000)

	say("waiting for every node to discover every other (DHT + presence gossip)")
	discStart := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = nodeproc.WaitFor(dctx, func() error { return fullyMeshed(dctx, h.Nodes()) })
	cancel()
	if err != nil {
		return fmt.Errorf("discovery did not complete: %w", err)
	}
	rep := Report{
		Dir:     o.Dir,
		Timings: Timings{StartSeconds: started.Seconds(), DiscoverySeconds: time.Since(discStart).Seconds()},
	}
	say("publishing the initial model; every trainer fetches, pays for, unlocks and exports it")
	if rep.Model, err = spreadModel(ctx, o.Dir, pub, coords, o.Threshold, trainers, &rep.Timings); err != nil {
		return err
	}
	mode := "secure aggregation (SecAgg+: the coordinator sees only the sum of the masked updates)"
	if !secure {
		mode = "plain FedAvg on a coordinator"
	}
	say("running a campaign of %d rounds: %d trainers on label-skewed shards join by themselves, %s", o.Rounds, len(trainers), mode)
	roundsBegan := time.Now()
	st := &story{dir: o.Dir, pub: pub, coords: coords, threshold: o.Threshold, trainers: trainers, data: data, secure: !o.Plain, say: say, restarts: map[string]int{},
		kill: kill, gate: gate, plan: plan}
	if rep.Training, rep.Campaign, err = st.runCampaign(ctx, rep.Model.ModelID, o.Rounds, func(l RoundLine) {
		say("round %d on %s: %d updates, held-out accuracy %.3f, %.2fs", l.Round, l.Coordinator, l.Updates, l.Accuracy, l.Seconds)
	}); err != nil {
		return err
	}
	rep.Timings.RoundsSeconds = time.Since(roundsBegan).Seconds() - rep.Training.finalSeconds
	rep.Timings.FinalSeconds = rep.Training.finalSeconds
	scrapeBegan = time.Now()
	endScrape, err := scrapeAll(ctx, h.Nodes())
	if err != nil {
		return fmt.Errorf("scrape /metrics: %w", err)
	}
	say("scraped /metrics of %d nodes in %.1fms", len(h.Nodes()), float64(time.Since(scrapeBegan).Microseconds())/1000)
	rep.Metrics = metricDeltas(h.Nodes(), startScrape, endScrape)
	for _, n := range h.Nodes() {
		if !n.Running() {
			rep.Nodes = append(rep.Nodes, NodeReport{NodeEntry: entry(n, calURL[n.Name]), Stopped: true})
			continue
		}
		peers, _ := n.Client().NodePeers(ctx)
		dir, _ := n.Client().NodeDirectory(ctx)
		bal, err := n.Client().LedgerBalance(ctx)
		if err != nil {
			return fmt.Errorf("%s: ledger_balance: %w", n.Name, err)
		}
		rep.Nodes = append(rep.Nodes, NodeReport{NodeEntry: entry(n, calURL[n.Name]), Peers: len(peers), Known: len(dir), Balance: bal.Balance,
			BalanceTokens: bal.BalanceTokens, LedgerKind: bal.LedgerKind, AccountID: bal.AccountID, Restarts: st.restarts[n.Name]})
	}
	rep.Timings.TotalSeconds = time.Since(began).Seconds()
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(stdout, rep)
	}
	if o.Keep {
		say("up; drive a node with `califusiond --datadir %s/<name> node info`; Ctrl-C stops", o.Dir)
		<-ctx.Done()
	}
	return nil
}

func initNode(ctx context.Context, h *nodeproc.Cluster, name string, roles []string) (*nodeproc.Node, error) {
	if _, err := os.Stat(filepath.Join(h.Dir, name, "identity.key")); err == nil {
		return h.Reuse(name, roles) // a devnet directory from an earlier run keeps its identities
	}
	return h.Init(ctx, name, roles)
}

// startAll starts nodes concurrently with the same extra args.
func startAll(ctx context.Context, nodes []*nodeproc.Node, args ...string) error {
	return onEach(nodes, func(_ int, n *nodeproc.Node) error { return n.Start(ctx, args...) })
}

// fullyMeshed reports nil once every node is connected to, and has a presence announcement from,
// every other node.
func fullyMeshed(ctx context.Context, nodes []*nodeproc.Node) error {
	want := len(nodes) - 1
	for _, n := range nodes {
		peers, err := n.Client().NodePeers(ctx)
		if err != nil {
			return err
		}
		if len(peers) < want {
			return fmt.Errorf("%s is connected to %d of %d peers", n.Name, len(peers), want)
		}
		dir, err := n.Client().NodeDirectory(ctx)
		if err != nil {
			return err
		}
		if len(dir) < want {
			return fmt.Errorf("%s has heard %d of %d presence announcements", n.Name, len(dir), want)
		}
	}
	return nil
}

func entry(n *nodeproc.Node, calimeroURL string) NodeEntry {
	info := n.Info()
	return NodeEntry{Name: n.Name, Roles: n.Roles, Datadir: n.Datadir, RPCAddr: n.RPCAddr(), PeerID: info.PeerID,
		P2PAddrs: append([]string(nil), info.Addrs...), CalimeroURL: calimeroURL}
}

// writeFile writes devnet.json; calURL maps a node's name to its Calimero node's URL.
func writeFile(dir string, h *nodeproc.Cluster, calURL map[string]string, cal *CalEntry, icp *ICPEntry) error {
	f := File{Calimero: cal, ICP: icp}
	for _, n := range h.Nodes() {
		f.Nodes = append(f.Nodes, entry(n, calURL[n.Name]))
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".devnet.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "devnet.json"))
}

func printReport(w io.Writer, r Report) {
	fmt.Fprintf(w, "\nCaliFusion devnet (%s)\n\n", r.Dir)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLES\tPEER ID\tRPC\tPEERS\tKNOWN\tBALANCE")
	for _, n := range r.Nodes {
		bal := n.Balance
		if n.BalanceTokens != "" {
			bal = n.BalanceTokens
		}
		if n.Stopped {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\tkilled by the story\n", n.Name, strings.Join(n.Roles, ","), n.PeerID, n.RPCAddr)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", n.Name, strings.Join(n.Roles, ","), n.PeerID, n.RPCAddr, n.Peers, n.Known, bal)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nstarted in %.1fs; every node discovered every other in %.1fs\n", r.Timings.StartSeconds, r.Timings.DiscoverySeconds)
	if m := r.Model; m != nil {
		fmt.Fprintf(w, "\ninitial model %s (%d bytes, %d encrypted chunks) published in %.2fs, fetched by every trainer in %.2fs:\n", m.ModelID[:16], m.Size, m.Chunks, r.Timings.PublishSeconds, r.Timings.FetchSeconds)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TRAINER\tFETCH S\tPAID\tBLOCK\tEXPORT")
		for _, f := range m.Fetches {
			ok := "FAILED"
			if f.ExportOK {
				ok = "sha256 ok"
			}
			fmt.Fprintf(tw, "  %s\t%.2f\t%s\t%d\t%s\n", f.Node, f.Seconds, f.Paid, f.PaidBlock, ok)
		}
		tw.Flush()
		fmt.Fprintf(w, "anchored in Calimero: %v; verified by %d of %d trainers through their own replica\n", m.Anchored, m.AnchorVerifiedBy, len(m.Fetches))
	}
	if t := r.Training; t != nil {
		fmt.Fprintf(w, "\ntraining: shards of %v rows (%.0f%% sorted by label), %d held-out rows, %d local epochs per round\n", t.ShardRows, LabelSkew*100, t.TestRows, LocalEpochs)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  ROUND\tCOORDINATOR\tSECURE\tUPDATES\tDROPOUTS\tSAMPLES\tVS FEDAVG\tACCURACY\tANCHORS\tCOLLECT S\tROUND S\tNEW MODEL")
		for _, l := range t.Rounds {
			secure, gap, dropped := "no", "-", "-"
			if l.Secure {
				secure, gap, dropped = "yes", fmt.Sprintf("%.1e", l.FedAvgGap), fmt.Sprint(len(l.Dropouts))
				if len(l.Dropouts) > 0 {
					dropped += " (" + strings.Join(l.Dropouts, ",") + ")"
				}
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%d\t%s\t%d\t%s\t%.3f\t%d\t%.2f\t%.2f\t%s\n", l.Round, l.Coordinator, secure, l.Updates, dropped, l.Samples, gap, l.Accuracy, l.Anchors, l.TrainSecs, l.Seconds, l.NewModel[:16])
		}
		tw.Flush()
		if t.KilledCoordinator != "" {
			fmt.Fprintf(w, "  %s was killed while the campaign's round 2 was open on it; another coordinator re-opened the round and ran the rest\n", t.KilledCoordinator)
		}
		printParticipants(w, t.Rounds)
		fmt.Fprintf(w, "final model %s: held-out accuracy %.3f; the same trainer run centrally on the union, same schedule: %.3f (gap %+.1f points)",
			t.FinalModel[:16], t.FinalAccuracy, t.CentralAccuracy, 100*(t.FinalAccuracy-t.CentralAccuracy))
		if t.CentralConstantAccuracy != t.CentralAccuracy {
			fmt.Fprintf(w, "; at a constant learning rate: %.3f (gap %+.1f points)", t.CentralConstantAccuracy, 100*(t.FinalAccuracy-t.CentralConstantAccuracy))
		}
		fmt.Fprintf(w, "; the best central run of the sweep (%s): %.3f (gap %+.1f points)\n", t.CentralBest, t.CentralBestAccuracy, 100*(t.FinalAccuracy-t.CentralBestAccuracy))
		fmt.Fprintf(w, "released without a new payment to %d of %d trainers, who exported the publisher's exact bytes\n", t.ReleasedTo, len(t.ShardRows))
	}
	if r.Campaign != nil {
		printCampaign(w, r.Campaign)
	}
	tm := r.Timings
	fmt.Fprintf(w, "\ntimings: start %.1fs, discovery %.1fs, publish %.2fs, fetch %.2fs, pay+unlock %.2fs, rounds %.1fs, final %.2fs, total %.1fs\n",
		tm.StartSeconds, tm.DiscoverySeconds, tm.PublishSeconds, tm.FetchSeconds, tm.UnlockSeconds, tm.RoundsSeconds, tm.FinalSeconds, tm.TotalSeconds)
	printMetrics(w, r.Nodes, r.Metrics)
}

// printParticipants prints each round's participants on one line: node, samples, norm, verdict
// and the first digits of the update's hash.
func printParticipants(w io.Writer, rounds []RoundLine) {
	fmt.Fprintln(w, "  participants (node samples norm verdict update):")
	for _, l := range rounds {
		if l.Secure {
			line := "secure: summed the masked updates of " + strings.Join(l.Contributors, ", ")
			if len(l.Dropouts) > 0 {
				line += "; dropped out: " + strings.Join(l.Dropouts, ", ")
			}
			fmt.Fprintf(w, "  %2d  %s (the coordinator never saw one update; vs the plain FedAvg of them: %.1e ≤ %.1e)\n", l.Round, line, l.FedAvgGap, l.FedAvgBound)
			continue
		}
		parts := make([]string, 0, len(l.Participants))
		for _, p := range l.Participants {
			verdict := p.Verdict
			if p.Reason != "" {
				verdict += ":" + p.Reason
			}
			parts = append(parts, fmt.Sprintf("%s %d %.2f %s %.8s", p.Node, p.Samples, p.Norm, verdict, p.UpdateSHA256))
		}
		fmt.Fprintf(w, "  %2d  %s\n", l.Round, strings.Join(parts, " | "))
	}
}
