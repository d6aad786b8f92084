package devnet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/node/nodeproc"
	"github.com/califusion/califusion/node/secagg"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// The digits model and the training settings of the story. Trainers run the built-in trainer
// for LocalEpochs per round; the central baseline runs the same trainer for Rounds × LocalEpochs
// on the union of the shards.
const (
	DigitsFeatures = 64
	DigitsClasses  = 10
	LocalEpochs    = 5
	BatchSize      = 32
	LearningRate   = 0.5
	// LabelSkew is the share of training rows dealt to trainers sorted by label (non-IID); the
	// rest is dealt at random.
	LabelSkew    = 0.7
	TestFraction = 0.2
	DataSeed     = 7
	// ClipNorm bounds an update's delta (honest updates in this story stay well below it).
	ClipNorm = 50
)

// DefaultStrategy is the training strategy of the story's rounds: of the settings whose simulated
// story runs (failover before round 2, a dropout in round 3) never fell below the eval floor, the
// one that closes the gap to the central run best on these shards (BENCHMARKS.md, "Strategies on
// the devnet shards"; go run ./node/devnet/cmd/strategies -grid).
var DefaultStrategy = adminrpc.StrategyParams{Strategy: fl.StrategyFedAvgM, ServerLR: 1.2, Momentum: 0.8}

// TrainingReport tells how the rounds went.
type TrainingReport struct {
	Rounds    []RoundLine `json:"rounds"`
	ShardRows []int       `json:"shard_rows"` // training rows of each trainer
	TestRows  int         `json:"test_rows"`  // held-out rows, seen by no trainer
	// FinalAccuracy is measured by the devnet itself on the publisher's export of the last
	// version; CentralAccuracy by the same trainer run centrally on the union of the shards.
	FinalAccuracy   float64 `json:"final_accuracy"`
	CentralAccuracy float64 `json:"central_accuracy"`
	FinalModel      string  `json:"final_model"`
	// ReleasedTo counts the trainers that unlocked the final version without paying again (they
	// paid for the lineage) and exported exactly the publisher's bytes.
	ReleasedTo int `json:"released_to"`
	// KilledCoordinator names the coordinator the story killed after the first round ("" when
	// there were no more coordinators than the threshold).
	KilledCoordinator string `json:"killed_coordinator,omitempty"`

	finalSeconds float64
}

// RoundLine is one round of the story.
type RoundLine struct {
	Round     int     `json:"round"`
	RoundID   string  `json:"round_id"`
	NewModel  string  `json:"new_model"`
	Updates   int     `json:"updates"`
	Samples   uint64  `json:"samples"`
	MeanNorm  float64 `json:"mean_norm"`
	Accuracy  float64 `json:"accuracy"` // the coordinator's evaluation of the aggregate on the held-out set
	Anchors   int     `json:"anchors"`
	Seconds   float64 `json:"seconds"`
	TrainSecs float64 `json:"train_seconds"` // slowest trainer's hook run
	// Additions, from the coordinator's round report: every trainer's verdict and the kv-store
	// keys of the anchors written (Anchors counts them).
	Participants []Participant `json:"participants,omitempty"`
	AnchorKeys   []string      `json:"anchor_keys,omitempty"`
	// Coordinator is the devnet node that ran the round.
	Coordinator string `json:"coordinator,omitempty"`
	// Secure rounds: the trainers whose masked updates were summed and those that dropped out
	// (by node name), and how far the new version is from the plain FedAvg of the same updates
	// (the largest difference of one weight; computed by the devnet, which alone sees every
	// update) against the bound quantisation allows.
	Secure       bool     `json:"secure,omitempty"`
	Contributors []string `json:"contributors,omitempty"`
	Dropouts     []string `json:"dropouts,omitempty"`
	FedAvgGap    float64  `json:"fedavg_gap,omitempty"`
	FedAvgBound  float64  `json:"fedavg_bound,omitempty"`
}

// Participant is one trainer's update in a round, as the round's report tells it.
type Participant struct {
	Node         string  `json:"node"` // the devnet node's name ("" for a peer that is not one)
	PeerID       string  `json:"peer_id"`
	Samples      uint64  `json:"samples"`
	Norm         float64 `json:"norm"`
	Verdict      string  `json:"verdict"` // accepted, clipped (accepted, scaled to the bound) or rejected
	Reason       string  `json:"reason,omitempty"`
	UpdateSHA256 string  `json:"update_sha256"`
}

// participants turns a report's participants into the devnet's lines, naming the nodes.
func participants(ps []adminrpc.Participant, trainers []*nodeproc.Node) []Participant {
	names := map[string]string{}
	for _, tr := range trainers {
		names[tr.Info().PeerID] = tr.Name
	}
	out := make([]Participant, 0, len(ps))
	for _, p := range ps {
		verdict := "accepted"
		switch {
		case !p.Accepted:
			verdict = "rejected"
		case p.Clipped:
			verdict = "clipped"
		}
		out = append(out, Participant{Node: names[p.PeerID], PeerID: p.PeerID, Samples: p.Samples, Norm: p.Norm, Verdict: verdict, Reason: p.Reason, UpdateSHA256: p.SHA256})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// storyData is the digits data cut for the story.
type storyData struct {
	train, test *fl.Dataset
	shards      []*fl.Dataset
}

// prepareData splits the digits into a held-out test set and label-skewed trainer shards, writes
// each trainer's shard into its datadir folder and the test set for every coordinator (whichever
// aggregates a round scores it), and configures the nodes' training settings.
func prepareData(coords []*nodeproc.Node, trainers []*nodeproc.Node) (*storyData, error) {
	all, err := LoadDigits()
	if err != nil {
		return nil, err
	}
	sd := &storyData{}
	sd.train, sd.test = all.Split(DataSeed, TestFraction)
	sd.shards = sd.train.Shards(len(trainers), DataSeed, LabelSkew)
	for _, coord := range coords {
		testPath := filepath.Join(coord.Datadir, "heldout.csv")
		if err := WriteCSV(testPath, sd.test); err != nil {
			return nil, err
		}
		if err := coord.EditConfig(func(c *config.Config) { c.Train.EvalData = testPath }); err != nil {
			return nil, err
		}
	}
	for i, tr := range trainers {
		path := filepath.Join(tr.Datadir, "shard.csv")
		if err := WriteCSV(path, sd.shards[i]); err != nil {
			return nil, err
		}
		err := tr.EditConfig(func(c *config.Config) {
			c.Train.Data, c.Train.Hook = path, config.HookBuiltin
			c.Train.Epochs, c.Train.BatchSize, c.Train.LearningRate = LocalEpochs, BatchSize, LearningRate
		})
		if err != nil {
			return nil, err
		}
	}
	return sd, nil
}

// story is the devnet's cast while it runs the rounds.
type story struct {
	dir       string
	pub       *nodeproc.Node
	coords    []*nodeproc.Node // the lineage's coordinators; the story kills the first after round 1 when the threshold allows
	threshold int
	trainers  []*nodeproc.Node
	data      *storyData
	secure    bool // secure rounds (SecAgg+) when there are enough trainers
	say       func(format string, args ...any)
	restarts  map[string]int // nodes the story restarted (their metrics start again from zero)
	ref       strategyRef    // the rounds' server step replayed on the plain FedAvg references
}

// liveCoordinator returns the first coordinator still running.
func (st *story) liveCoordinator() *nodeproc.Node {
	for _, c := range st.coords {
		if c.Running() {
			return c
		}
	}
	return nil
}

// waitCustody waits until every coordinator but except holds all the chunks of model.
func (st *story) waitCustody(ctx context.Context, model string, except *nodeproc.Node) error {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, c := range st.coords {
		if c == except || !c.Running() {
			continue
		}
		err := nodeproc.WaitFor(wctx, func() error {
			d, err := c.Client().ModelGet(wctx, model)
			switch {
			case err != nil:
				return err
			case d.LocalChunks < d.Chunks:
				return fmt.Errorf("%s holds %d of %d chunks of %s", c.Name, d.LocalChunks, d.Chunks, model)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("custody: %w", err)
		}
	}
	return nil
}

// dropRound is the round in which a secure story kills a trainer after it sent its key shares
// (the round completes without it): the third, or the last when there are fewer.
func dropRound(rounds int) int { return min(3, rounds) }

// round runs round r of the story on the first live coordinator: it opens the round on model,
// every trainer trains and submits, and it waits for the new version. A secure round (the
// default with enough trainers) is checked against the plain FedAvg of the same updates; in
// dropRound one trainer is made to crash after sending its key shares, and is restarted after
// the round.
func (st *story) round(ctx context.Context, r, rounds int, model string) (*RoundLine, error) {
	coord := st.liveCoordinator()
	trainers := st.trainers
	secure := st.secure && len(trainers) >= MinSecureTrainers
	var victim *nodeproc.Node
	if secure && r == dropRound(rounds) && len(trainers) > MinSecureTrainers {
		victim = trainers[len(trainers)-1]
		if err := st.restart(ctx, victim, "CALIFUSION_CRASH_AT=secagg-shares-sent"); err != nil {
			return nil, err
		}
		st.say("round %d: %s will crash after sending its key shares", r, victim.Name)
	}
	began := time.Now()
	open, err := coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: model, MinUpdates: len(trainers), Deadline: "5m", Rule: fl.RuleFedAvg,
		ClipNorm: ClipNorm, ClipMode: map[bool]string{true: "scale"}[secure], Secure: secure, Clip: map[bool]float64{true: SecureClip}[secure], StrategyParams: DefaultStrategy})
	if err != nil {
		return nil, fmt.Errorf("round %d: %s: round_open: %w", r, coord.Name, err)
	}
	trainSecs := make([]float64, len(trainers))
	updates := make([]trained, len(trainers))
	err = onEach(trainers, func(i int, tr *nodeproc.Node) error {
		res, err := tr.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
		if err != nil {
			return fmt.Errorf("round %d: %s: train_run: %w", r, tr.Name, err)
		}
		trainSecs[i], updates[i] = res.Seconds, trained{node: tr, updateID: res.UpdateID, samples: res.Samples}
		if _, err := tr.Client().UpdateSubmit(ctx, open.RoundID, res.UpdateID); err != nil {
			// The trainer made to crash after its shares may crash before its answer reaches us
			// (a secure submission goes on in the background once admitted).
			if tr == victim && crashed(ctx, tr) {
				return nil
			}
			return fmt.Errorf("round %d: %s: update_submit: %w", r, tr.Name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var newModel string
	if secure {
		// A secure round aggregates by itself once its trainers went through the phases.
		info, err := waitRound(ctx, coord, model, open.RoundID)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", r, err)
		}
		if info.State != "done" {
			return nil, fmt.Errorf("round %d failed on %s: %s", r, coord.Name, info.Error)
		}
		newModel = info.NewModel
	} else {
		// The last accepted update starts aggregation; round_close waits for it to end.
		closed, err := coord.Client().RoundClose(ctx, open.RoundID)
		if err != nil {
			return nil, fmt.Errorf("round %d: round_close: %w", r, err)
		}
		newModel = closed.ModelID
	}
	report, err := coord.Client().RoundReport(ctx, open.RoundID)
	if err != nil {
		return nil, fmt.Errorf("round %d: round_report: %w", r, err)
	}
	line := &RoundLine{
		Round: r, RoundID: open.RoundID, NewModel: newModel, Updates: int(report.Metrics["accepted"]),
		Samples: uint64(report.Metrics["samples"]), MeanNorm: report.Metrics["mean_norm"], Accuracy: report.Metrics["accuracy"],
		Anchors: len(report.Anchors), Seconds: time.Since(began).Seconds(), Coordinator: coord.Name,
		Participants: participants(report.Participants, trainers), AnchorKeys: append([]string(nil), report.Anchors...),
		Secure: report.Secure,
	}
	for _, s := range trainSecs {
		line.TrainSecs = max(line.TrainSecs, s)
	}
	if secure {
		if err := st.checkSecure(ctx, line, report, updates, model); err != nil {
			return nil, fmt.Errorf("round %d: %w", r, err)
		}
	}
	if victim != nil {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := nodeproc.WaitFor(wctx, func() error {
			if victim.Running() {
				return fmt.Errorf("%s is still running: it never crashed after sending its shares", victim.Name)
			}
			return nil
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", r, err)
		}
		if err := st.restart(ctx, victim); err != nil {
			return nil, err
		}
	}
	return line, nil
}

// crashed reports whether n's process ends within a few seconds (it was made to crash).
func crashed(ctx context.Context, n *nodeproc.Node) bool {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return nodeproc.WaitFor(wctx, func() error {
		if n.Running() {
			return fmt.Errorf("%s still runs", n.Name)
		}
		return nil
	}) == nil
}

// checkSecure fills a secure round's line from its report (contributors and dropouts by node
// name) and measures its distance from the plain FedAvg of the contributors' updates.
func (st *story) checkSecure(ctx context.Context, line *RoundLine, report adminrpc.RoundReport, updates []trained, base string) error {
	names := map[string]*nodeproc.Node{}
	for _, tr := range st.trainers {
		names[tr.Info().PeerID] = tr
	}
	var contributors []trained
	for _, id := range report.Contributors {
		n := names[id]
		if n == nil {
			return fmt.Errorf("contributor %s is not a devnet trainer", id)
		}
		line.Contributors = append(line.Contributors, n.Name)
		for _, u := range updates {
			if u.node == n {
				contributors = append(contributors, u)
			}
		}
	}
	for _, id := range report.Dropouts {
		if n := names[id]; n != nil {
			line.Dropouts = append(line.Dropouts, n.Name)
		} else {
			line.Dropouts = append(line.Dropouts, id)
		}
	}
	line.Updates, line.Samples = len(contributors), 0
	for _, c := range contributors {
		line.Samples += c.samples
	}
	if report.SecAgg == nil {
		return errors.New("the secure round's report has no secagg parameters")
	}
	p := secagg.Params{Neighbours: report.SecAgg.Neighbours, Threshold: report.SecAgg.Threshold, Clip: report.SecAgg.Clip, Bits: report.SecAgg.Bits, MaxWeight: report.SecAgg.MaxWeight}
	// A contributor exports the base it trained on and the new version.
	ref := contributors[0].node
	basePath := filepath.Join(st.dir, fmt.Sprintf("round%d-base.safetensors", line.Round))
	newPath := filepath.Join(st.dir, fmt.Sprintf("round%d-new.safetensors", line.Round))
	if err := exportOn(ctx, ref, base, basePath); err != nil {
		return err
	}
	if err := exportOn(ctx, ref, line.NewModel, newPath); err != nil {
		return err
	}
	gap, bound, err := plainFedAvgGap(basePath, newPath, contributors, ClipNorm, p, &st.ref, report.Metrics["opt_state_carried"] == 1)
	if err != nil {
		return fmt.Errorf("plain FedAvg reference: %w", err)
	}
	line.FedAvgGap, line.FedAvgBound = gap, bound
	if gap > bound {
		return fmt.Errorf("the secure aggregate differs from the plain FedAvg of the same updates by %.3g, more than the quantisation bound %.3g", gap, bound)
	}
	return nil
}

// restart stops n and starts it again with env (none: the failpoints of before are gone),
// bootstrapping from the publisher; a node that crashed is only started.
func (st *story) restart(ctx context.Context, n *nodeproc.Node, env ...string) error {
	if n.Running() {
		if err := n.Stop(); err != nil {
			return fmt.Errorf("stop %s: %w", n.Name, err)
		}
	}
	n.Env = env
	st.restarts[n.Name]++
	if err := n.Start(ctx, "--bootstrap", st.pub.P2PAddr()); err != nil {
		return fmt.Errorf("restart %s: %w", n.Name, err)
	}
	// Back in the network: it hears rounds and reaches the coordinators again.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	live := []*nodeproc.Node{}
	for _, o := range append(append([]*nodeproc.Node{st.pub}, st.coords...), st.trainers...) {
		if o.Running() {
			live = append(live, o)
		}
	}
	return nodeproc.WaitFor(wctx, func() error { return fullyMeshed(wctx, live) })
}

// runRounds runs the training rounds: a live coordinator opens a round on the latest version,
// every trainer trains on its shard and submits, the coordinator aggregates on quorum and
// publishes the next version. After the first round the story kills one coordinator (when more
// than the threshold remain): the next rounds run on another, and trainers still unlock.
func (st *story) runRounds(ctx context.Context, model string, rounds int, progress func(RoundLine)) (*TrainingReport, error) {
	sd := st.data
	rep := &TrainingReport{TestRows: len(sd.test.X)}
	for _, s := range sd.shards {
		rep.ShardRows = append(rep.ShardRows, len(s.X))
	}
	for r := 1; r <= rounds; r++ {
		if r == 2 && len(st.coords) > st.threshold {
			victim := st.liveCoordinator()
			// The other coordinators keep a copy of every version of their lineages (custody):
			// wait for them to hold the one the victim aggregated before it dies.
			if err := st.waitCustody(ctx, model, victim); err != nil {
				return nil, err
			}
			st.say("killing %s (SIGKILL): %d of %d coordinators remain, the threshold is %d", victim.Name, len(st.coords)-1, len(st.coords), st.threshold)
			if err := victim.Kill(); err != nil {
				return nil, fmt.Errorf("kill %s: %w", victim.Name, err)
			}
			rep.KilledCoordinator = victim.Name
		}
		line, err := st.round(ctx, r, rounds, model)
		if err != nil {
			return nil, err
		}
		rep.Rounds = append(rep.Rounds, *line)
		progress(*line)
		model = line.NewModel
	}
	rep.FinalModel = model
	finalBegan := time.Now()
	defer func() { rep.finalSeconds = time.Since(finalBegan).Seconds() }()

	// The publisher fetches and unlocks the final version (it published the lineage: no payment)
	// and exports it; the devnet scores it itself.
	if err := fetchOn(ctx, st.pub, model); err != nil {
		return nil, err
	}
	if _, err := st.pub.Client().ModelUnlock(ctx, adminrpc.UnlockParams{ModelID: model}); err != nil {
		return nil, fmt.Errorf("publisher: unlock the final model: %w", err)
	}
	path := filepath.Join(st.dir, "final-model.safetensors")
	exp, err := st.pub.Client().ModelExport(ctx, model, path)
	if err != nil {
		return nil, fmt.Errorf("publisher: export the final model: %w", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	final, err := fl.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("the final model is not safetensors: %w", err)
	}
	rep.FinalAccuracy = fl.Accuracy(final, st.data.test)
	central, err := fl.TrainLogReg(fl.NewLogReg(DigitsFeatures, DigitsClasses), st.data.train, rounds*LocalEpochs, BatchSize, LearningRate, DataSeed)
	if err != nil {
		return nil, err
	}
	rep.CentralAccuracy = fl.Accuracy(central, st.data.test)

	// Every trainer paid for the lineage once: it gets the final version's key without paying.
	for _, tr := range st.trainers {
		if err := fetchOn(ctx, tr, model); err != nil {
			return nil, err
		}
		if _, err := tr.Client().ModelUnlock(ctx, adminrpc.UnlockParams{ModelID: model}); err != nil {
			return nil, fmt.Errorf("%s: unlock the final model: %w", tr.Name, err)
		}
		got, err := tr.Client().ModelExport(ctx, model, filepath.Join(filepath.Dir(tr.Datadir), tr.Name+"-final-model.export"))
		if err != nil {
			return nil, fmt.Errorf("%s: export the final model: %w", tr.Name, err)
		}
		if got.SHA256 == exp.SHA256 {
			rep.ReleasedTo++
		}
	}
	return rep, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
