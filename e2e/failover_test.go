package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/calimero/calimerotest"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

// failoverNet is a lineage escrowed 2-of-3 across three coordinators, with trainers that paid
// for it and unlocked it; anchoring goes to two emulated merod nodes.
type failoverNet struct {
	replica *icptest.Sim
	c       *cluster
	pub     *harness.Node
	coords  []*harness.Node
	trs     []*harness.Node
	ids     []string // the coordinators' peer IDs, in the lineage's order
	model   string
}

// newFailoverNet starts it, with failover after 2 s of silence; configure edits every trainer's
// and coordinator's configuration before they start, and env is coordinator 1's environment.
func newFailoverNet(t *testing.T, trainers int, configure func(n *harness.Node, cfg *config.Config), env ...string) *failoverNet {
	t.Helper()
	replica := startReplica(t)
	c := newCluster(t)
	pub := c.NewNodes("pub", 1, "publisher")[0]
	coords := c.NewNodes("coord", 3, "coordinator")
	trs := c.NewNodes("tr", trainers, "trainer")
	coords[0].Env = env
	all := append(append([]*harness.Node{pub}, coords...), trs...)
	useReplica(t, replica.URL(), all...)
	// Calimero: the publisher and the coordinators on one merod node, the trainers on another.
	sim, err := calimerotest.New(calimerotest.Options{Nodes: 2, ReplicationDelay: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	catalogCtx := sim.CreateContext()
	for i, n := range all {
		member := sim.Node(map[bool]int{true: 1}[i > len(coords)])
		if err := n.EditConfig(func(cfg *config.Config) {
			cfg.Calimero = config.Calimero{Anchoring: "prefer", URL: member.URL(), ContextID: catalogCtx, ExecutorKey: member.Identity()}
		}); err != nil {
			t.Fatal(err)
		}
	}
	digits, err := devnet.LoadDigits()
	if err != nil {
		t.Fatal(err)
	}
	train, _ := digits.Split(1, 0.2)
	shards := train.Shards(len(trs), 1, 0.5)
	for _, co := range coords {
		if err := co.EditConfig(func(cfg *config.Config) {
			cfg.Train.FailoverAfter = config.Duration{Duration: 2 * time.Second}
			if configure != nil {
				configure(co, cfg)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i, tr := range trs {
		path := filepath.Join(tr.Datadir, "shard.csv")
		if err := devnet.WriteCSV(path, shards[i]); err != nil {
			t.Fatal(err)
		}
		if err := tr.EditConfig(func(cfg *config.Config) {
			cfg.Train.Data, cfg.Train.Epochs, cfg.Train.LearningRate = path, 2, 0.5
			if configure != nil {
				configure(tr, cfg)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	c.start(pub)
	for _, n := range all[1:] {
		c.start(n, "--bootstrap", pub.P2PAddr())
	}
	for _, n := range append(append([]*harness.Node(nil), coords...), trs...) {
		replica.Mint(principal.MustDecode(n.Info().ICPPrincipal), 10_000_000)
	}
	for _, n := range all {
		var others []*harness.Node
		for _, o := range all {
			if o != n {
				others = append(others, o)
			}
		}
		waitHeard(t, n, others...)
	}
	raw, err := fl.NewLogReg(devnet.DigitsFeatures, devnet.DigitsClasses).Encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, co := range coords {
		ids = append(ids, co.Info().PeerID)
	}
	res, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "digits", Price: "1000", Coordinators: ids, Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range append([]*harness.Node{coords[0], coords[1]}, trs...) {
		fetchModel(t, n, res.ModelID)
	}
	for _, tr := range trs {
		if _, err := tr.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: res.ModelID}); err != nil {
			t.Fatalf("%s: unlock: %v", tr.Name, err)
		}
	}
	return &failoverNet{replica: replica, c: c, pub: pub, coords: coords, trs: trs, ids: ids, model: res.ModelID}
}

// TestRoundFailover: a lineage escrowed 2-of-3 across three coordinators. The first opens a
// round and the trainers train for it; then it dies (SIGKILL) before they submit. Once it has
// been silent for train.failover_after, the second coordinator re-opens the round from its
// anchored round commitment (same base model and parameters, a new ID naming the old one); the
// trainers see the old round failed, submit the updates they trained for it to the new round,
// and it aggregates into a new version they unlock without paying again.
func TestRoundFailover(t *testing.T) {
	fn := newFailoverNet(t, 2, nil)
	coords, trs, ids, res := fn.coords, fn.trs, fn.ids, struct{ ModelID string }{fn.model}

	open, err := coords[0].Client().RoundOpen(t.Context(), adminrpc.RoundOpenParams{ModelID: res.ModelID, MinUpdates: 2, Deadline: "10m", Rule: fl.RuleFedAvg, ClipNorm: 50})
	if err != nil {
		t.Fatal(err)
	}
	updates := make([]string, len(trs))
	for i, tr := range trs {
		r, err := tr.Client().TrainRun(t.Context(), adminrpc.TrainRunParams{RoundID: open.RoundID})
		if err != nil {
			t.Fatalf("%s: train_run: %v", tr.Name, err)
		}
		updates[i] = r.UpdateID
	}
	// The round commitment is anchored in the background as the round opens: the coordinator
	// dies once it is (a round it never anchored is re-opened from its announcement instead).
	waitFor(t, 30*time.Second, func() error {
		if !strings.Contains(coords[0].Logs(), `msg="round commitment anchored" subsys=rounds round=`+open.RoundID) {
			return errf("round %s's commitment is not anchored yet", open.RoundID)
		}
		return nil
	})
	if err := coords[0].Kill(); err != nil {
		t.Fatal(err)
	}

	// The re-opened round, as the first trainer hears it.
	var reopened adminrpc.RoundInfo
	waitFor(t, 2*time.Minute, func() error {
		list, err := trs[0].Client().RoundList(t.Context(), res.ModelID)
		if err != nil {
			return err
		}
		for _, r := range list {
			if r.Reopens == open.RoundID {
				reopened = r
				return nil
			}
		}
		return errf("no round re-opens %s yet", open.RoundID)
	})
	if reopened.Coordinator != ids[1] || reopened.MinUpdates != 2 || reopened.Rule != fl.RuleFedAvg || reopened.State != "open" {
		t.Fatalf("re-opened round = %+v, want the second coordinator's, with the old round's parameters", reopened)
	}
	waitFor(t, 30*time.Second, func() error {
		list, err := trs[1].Client().RoundList(t.Context(), res.ModelID)
		if err != nil {
			return err
		}
		for _, r := range list {
			if r.RoundID == open.RoundID && r.State == "failed" && strings.Contains(r.Error, "re-opened") {
				return nil
			}
		}
		return errf("the silent round is not marked failed on %s: %+v", trs[1].Name, list)
	})
	// The second coordinator logs where it re-opened the round from once Open returned (the
	// trainers may hear the new round a moment before).
	waitFor(t, 30*time.Second, func() error {
		if logs := coords[1].Logs(); !strings.Contains(logs, `msg="round re-opened: its coordinator went silent"`) {
			return errf("the second coordinator has not logged the re-opening yet")
		}
		return nil
	})
	if logs := coords[1].Logs(); !strings.Contains(logs, `from="the anchored round commitment"`) {
		t.Errorf("the second coordinator did not re-open the round from its anchored commitment:\n%s", logs)
	}
	for i, tr := range trs {
		if sub, err := tr.Client().UpdateSubmit(t.Context(), reopened.RoundID, updates[i]); err != nil || !sub.Accepted {
			t.Fatalf("%s: submit the update trained for the old round to the re-opened one = %+v, %v", tr.Name, sub, err)
		}
	}
	closed, err := coords[1].Client().RoundClose(t.Context(), reopened.RoundID)
	if err != nil || closed.ModelID == "" {
		t.Fatalf("round_close on the re-opened round = %+v, %v", closed, err)
	}
	for _, tr := range trs {
		fetchModel(t, tr, closed.ModelID)
		if _, err := tr.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: closed.ModelID}); err != nil {
			t.Errorf("%s: unlock the re-opened round's version: %v", tr.Name, err)
		}
	}
}

// fetchModel waits until n knows model, fetches it and waits for the job.
func fetchModel(t *testing.T, n *harness.Node, model string) {
	t.Helper()
	waitFor(t, 30*time.Second, func() error { _, err := n.Client().ModelGet(t.Context(), model); return err })
	job, err := n.Client().ModelFetch(t.Context(), model)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, n, job.JobID, 30*time.Second)
}
