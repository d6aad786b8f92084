package devnet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	LearningRate   = 0.2
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
// one whose worst seed ends closest to the best central run on these shards, with LearningRate
// (BENCHMARKS.md, "Strategies on the devnet shards"; go run ./node/devnet/cmd/strategies -grid).
var DefaultStrategy = adminrpc.StrategyParams{Strategy: fl.StrategyFedAvgM, ServerLR: 1, Momentum: 0.5}

// TrainingReport tells how the rounds went.
type TrainingReport struct {
	Rounds    []RoundLine `json:"rounds"`
	ShardRows []int       `json:"shard_rows"` // training rows of each trainer
	TestRows  int         `json:"test_rows"`  // held-out rows, seen by no trainer
	// FinalAccuracy is measured by the devnet itself on the publisher's export of the last
	// version; CentralAccuracy by the same trainer run centrally on the union of the shards.
	FinalAccuracy   float64 `json:"final_accuracy"`
	CentralAccuracy float64 `json:"central_accuracy"`
	// CentralConstantAccuracy is the central run at the trainers' first learning rate without
	// a campaign's decay (CentralAccuracy when the campaign does not decay it, as the devnet's
	// does not).
	CentralConstantAccuracy float64 `json:"central_constant_accuracy"`
	// CentralBestAccuracy is the best central run of a sweep of learning rates and lengths
	// (Schedule.CentralBest), CentralBest which one it was.
	CentralBestAccuracy float64 `json:"central_best_accuracy"`
	CentralBest         string  `json:"central_best"`
	FinalModel          string  `json:"final_model"`
	// ReleasedTo counts the trainers that unlocked the final version without paying again (they
	// paid for the lineage) and exported exactly the publisher's bytes.
	ReleasedTo int `json:"released_to"`
	// KilledCoordinator names the coordinator the story killed while the campaign's round 2 was
	// open on it ("" when there were no more coordinators than the threshold).
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
	Seconds   float64 `json:"seconds"`       // the round's phases on its coordinator, from its opening to its publication
	TrainSecs float64 `json:"train_seconds"` // from the round's opening to its last update (the trainers' fetch, unlock, training, submission)
	// Additions, from the coordinator's round report: every trainer's verdict and the kv-store
	// keys of the anchors written (Anchors counts them).
	Participants []Participant `json:"participants,omitempty"`
	AnchorKeys   []string      `json:"anchor_keys,omitempty"`
	// Coordinator is the devnet node that ran the round.
	Coordinator string `json:"coordinator,omitempty"`
	// The trainers whose updates are in the aggregate (by node name; in a secure round, whose
	// masked updates were summed). Secure rounds: those that dropped out, and how far the new
	// version is from the plain FedAvg of the same updates (the largest difference of one
	// weight; computed by the devnet, which alone sees every update) against the bound
	// quantisation allows.
	Secure       bool     `json:"secure,omitempty"`
	Contributors []string `json:"contributors,omitempty"`
	Dropouts     []string `json:"dropouts,omitempty"`
	FedAvgGap    float64  `json:"fedavg_gap,omitempty"`
	FedAvgBound  float64  `json:"fedavg_bound,omitempty"`
	// Campaign rounds: the round this one re-opens (its coordinator was killed while it was
	// open), and whether its aggregate was not published (it scored too far below its base).
	Reopens      string `json:"reopens,omitempty"`
	KeptPrevious bool   `json:"kept_previous,omitempty"`
	// CampaignID and CampaignRound are the campaign the round's coordinator lists it under
	// (round_list's campaign_id, campaign_round) — "" and 0 from a coordinator that does not
	// tag its rounds.
	CampaignID    string `json:"campaign_id,omitempty"`
	CampaignRound int    `json:"campaign_round,omitempty"`
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
// aggregates a round scores it), and configures the nodes' training settings: the trainers join
// rounds by themselves (train.auto), the coordinators re-open a silent coordinator's round after
// FailoverAfter and, adopting its campaign, pay its reward (up to AdoptMaxReward).
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
		if err := coord.EditConfig(func(c *config.Config) {
			c.Train.EvalData, c.Train.FailoverAfter, c.Train.AdoptMaxReward = testPath, config.Duration{Duration: FailoverAfter}, AdoptMaxReward
		}); err != nil {
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
			c.Train.Auto = true // it joins the campaign's rounds by itself
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
	// kill: the story kills the first coordinator once the campaign opened round 2 on it; gate
	// and plan: the trainer whose restarts place the incidents, and its lives (gate.go).
	kill bool
	gate *nodeproc.Node
	plan []gateLife
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

// dropRound is the round in which a secure story makes a trainer crash after it sent its key
// shares (the round completes without it): the third, or the last when there are fewer.
func dropRound(rounds int) int { return min(3, rounds) }

// crashed reports whether n's process ends within timeout (it was made to crash).
func crashed(ctx context.Context, n *nodeproc.Node, timeout time.Duration) bool {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return nodeproc.WaitFor(wctx, func() error {
		if n.Running() {
			return fmt.Errorf("%s still runs", n.Name)
		}
		return nil
	}) == nil
}

// roundLine reads the report of campaign round n from coord, which ran it, and makes its line;
// a secure round is checked against the plain FedAvg of its contributors' updates.
func (st *story) roundLine(ctx context.Context, n int, coord *nodeproc.Node, info *adminrpc.RoundInfo, h adminrpc.CampaignRound) (*RoundLine, error) {
	report, err := coord.Client().RoundReport(ctx, info.RoundID)
	if err != nil {
		return nil, fmt.Errorf("%s: round_report: %w", coord.Name, err)
	}
	line := &RoundLine{
		Round: n, RoundID: info.RoundID, NewModel: h.NewModel, Updates: int(report.Metrics["accepted"]),
		Samples: uint64(report.Metrics["samples"]), MeanNorm: report.Metrics["mean_norm"], Accuracy: report.Metrics["accuracy"],
		Anchors: len(report.Anchors), Coordinator: coord.Name,
		Participants: participants(report.Participants, st.trainers), AnchorKeys: append([]string(nil), report.Anchors...),
		Secure: report.Secure, Reopens: info.Reopens, KeptPrevious: h.Kept,
		TrainSecs: report.Timings["collect_seconds"], CampaignID: info.CampaignID, CampaignRound: info.CampaignRound,
	}
	for _, k := range []string{"collect_seconds", "secagg_seconds", "aggregate_seconds", "publish_seconds"} {
		line.Seconds += report.Timings[k]
	}
	switch {
	case h.Kept: // the previous version stays; no version to compare with the plain FedAvg
		line.NewModel, line.Accuracy = h.BaseModel, h.Accuracy
		if report.Secure {
			if _, err := st.secureMembers(ctx, line, report, false); err != nil {
				return nil, err
			}
			return line, nil
		}
	case report.Secure:
		if line.NewModel == "" {
			line.NewModel = report.NewModel
		}
		if err := st.checkSecure(ctx, line, report, h.BaseModel); err != nil {
			return nil, err
		}
		return line, nil
	case line.NewModel == "":
		line.NewModel = report.NewModel
	}
	for _, p := range line.Participants {
		if p.Verdict != "rejected" {
			line.Contributors = append(line.Contributors, p.Node)
		}
	}
	return line, nil
}

// secureMembers fills a secure round's line with its contributors and dropouts (by node name,
// sorted) and its updates and samples (each contributor's shard rows: the built-in trainer trains
// on all of them); with updates, it returns each contributor's update as its round_list names it.
func (st *story) secureMembers(ctx context.Context, line *RoundLine, report adminrpc.RoundReport, updates bool) ([]trained, error) {
	byPeer := map[string]int{}
	for i, tr := range st.trainers {
		byPeer[tr.Info().PeerID] = i
	}
	var contributors []trained
	line.Contributors, line.Dropouts, line.Samples = nil, nil, 0
	for _, id := range report.Contributors {
		i, ok := byPeer[id]
		if !ok {
			return nil, fmt.Errorf("contributor %s is not a devnet trainer", id)
		}
		tr := st.trainers[i]
		line.Contributors = append(line.Contributors, tr.Name)
		c := trained{node: tr, samples: uint64(len(st.data.shards[i].X))}
		if updates {
			update, err := submittedUpdate(ctx, tr, line.RoundID)
			if err != nil {
				return nil, err
			}
			c.updateID = update
		}
		contributors = append(contributors, c)
		line.Samples += c.samples
	}
	for _, id := range report.Dropouts {
		if i, ok := byPeer[id]; ok {
			line.Dropouts = append(line.Dropouts, st.trainers[i].Name)
		} else {
			line.Dropouts = append(line.Dropouts, id)
		}
	}
	slices.Sort(line.Contributors)
	slices.Sort(line.Dropouts)
	line.Updates = len(contributors)
	return contributors, nil
}

// checkSecure fills a secure round's line from its report (contributors and dropouts by node
// name) and measures its distance from the plain FedAvg of the contributors' updates: each
// contributor's round_list names the update it submitted to the round (update_id), which the
// devnet reads from its datadir; its samples are its shard's rows (the built-in trainer trains
// on all of them).
func (st *story) checkSecure(ctx context.Context, line *RoundLine, report adminrpc.RoundReport, base string) error {
	contributors, err := st.secureMembers(ctx, line, report, true)
	if err != nil {
		return err
	}
	if report.SecAgg == nil {
		return errors.New("the secure round's report has no secagg parameters")
	}
	if len(contributors) == 0 {
		return errors.New("the secure round has no contributors")
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

// submittedUpdate returns the update trainer tr submitted to round (its round_list's update_id).
func submittedUpdate(ctx context.Context, tr *nodeproc.Node, round string) (string, error) {
	list, err := tr.Client().RoundList(ctx, "")
	if err != nil {
		return "", fmt.Errorf("%s: round_list: %w", tr.Name, err)
	}
	for _, r := range list {
		if r.RoundID == round && r.UpdateID != "" {
			return r.UpdateID, nil
		}
	}
	return "", fmt.Errorf("%s's round_list names no update it submitted to round %s", tr.Name, round)
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
	// Back in the network: it hears rounds and reaches the coordinators again. The nodes still
	// running are counted at each look: one started with a failpoint may have crashed already.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return nodeproc.WaitFor(wctx, func() error {
		live := []*nodeproc.Node{}
		for _, o := range append(append([]*nodeproc.Node{st.pub}, st.coords...), st.trainers...) {
			if o.Running() {
				live = append(live, o)
			}
		}
		return fullyMeshed(wctx, live)
	})
}

// runCampaign starts one campaign on the first coordinator — rounds rounds from model, every
// trainer in each (min_updates), the story's rule, clipping, secure parameters and strategy, a
// reward per accepted update — and follows it until it ends: the trainers join its rounds by
// themselves (train.auto); the devnet only reads each round's report, and places the story's
// incidents by killing the coordinator while round 2 is open (when more than the threshold
// remain: another re-opens the round and adopts the campaign) and by restarting the gate trainer
// (gate.go). Then the publisher exports the final version, which the devnet scores against the
// same trainer run centrally, and every trainer unlocks it without paying again.
func (st *story) runCampaign(ctx context.Context, model string, rounds int, progress func(RoundLine)) (*TrainingReport, *CampaignReport, error) {
	sd := st.data
	rep := &TrainingReport{TestRows: len(sd.test.X)}
	for _, s := range sd.shards {
		rep.ShardRows = append(rep.ShardRows, len(s.X))
	}
	secure := st.secure && len(st.trainers) >= MinSecureTrainers
	// The devnet's default campaign (defaults.go: strategy, trainer settings, learning-rate
	// decay) on the story's model, every trainer in each round, its rule, clipping and reward.
	params := DefaultCampaign()
	params.ModelID, params.Rounds, params.MinUpdates, params.Deadline, params.Rule = model, rounds, len(st.trainers), RoundDeadline, fl.RuleFedAvg
	params.ClipNorm, params.ClipMode, params.Secure, params.Clip = ClipNorm, map[bool]string{true: "scale"}[secure], secure, map[bool]float64{true: SecureClip}[secure]
	params.Reward = RewardPerUpdate
	before, err := st.balances(ctx)
	if err != nil {
		return nil, nil, err
	}
	coord := st.coords[0]
	camp, err := coord.Client().CampaignStart(ctx, params)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: campaign_start: %w", coord.Name, err)
	}
	st.say("campaign %s started on %s: %d rounds of %d trainers, %s, reward %s base units per accepted update; the trainers join by themselves (train.auto)",
		camp.CampaignID, coord.Name, rounds, len(st.trainers), strategyName(params.StrategyParams, params.LRDecay), RewardPerUpdate)
	f := &follower{st: st, id: camp.CampaignID, progress: progress, views: map[string]campaignView{}, lines: map[int]*RoundLine{}, ends: map[int]bool{},
		kill: st.kill, gate: st.gate, plan: st.plan}
	wctx, cancel := context.WithTimeout(ctx, time.Duration(rounds+2)*5*time.Minute)
	defer cancel()
	for {
		done, err := f.poll(wctx)
		if err != nil {
			return nil, nil, err
		}
		if done {
			break
		}
		select {
		case <-wctx.Done():
			return nil, nil, fmt.Errorf("campaign %s did not end: %w", camp.CampaignID, wctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	if f.gate != nil && !f.gate.Running() { // the campaign ended while it was down
		if err := f.enterLife(ctx, len(f.plan)-1); err != nil {
			return nil, nil, err
		}
	}
	lead, err := f.leader(ctx)
	if err != nil {
		return nil, nil, err
	}
	if lead == nil {
		return nil, nil, fmt.Errorf("no live coordinator lists campaign %s any more", camp.CampaignID)
	}
	summary, err := f.campaignReport(ctx, lead, params, before)
	if err != nil {
		return nil, nil, err
	}
	if f.killed != nil {
		rep.KilledCoordinator = f.killed.Name
	}
	for n := 1; n <= len(byNumber(f.views[lead.Name].History)); n++ {
		if l := f.lines[n]; l != nil {
			rep.Rounds = append(rep.Rounds, *l)
			model = l.NewModel
		}
	}
	if summary.State != "done" {
		return nil, nil, fmt.Errorf("campaign %s ended %s on %s: %s", camp.CampaignID, summary.State, lead.Name, summary.Why)
	}
	if len(rep.Rounds) == 0 {
		return nil, nil, fmt.Errorf("campaign %s ran no round", camp.CampaignID)
	}
	rep.FinalModel = model
	finalBegan := time.Now()
	defer func() { rep.finalSeconds = time.Since(finalBegan).Seconds() }()

	// The publisher fetches and unlocks the final version (it published the lineage: no payment)
	// and exports it; the devnet scores it itself.
	if err := fetchOn(ctx, st.pub, model); err != nil {
		return nil, nil, err
	}
	if _, err := st.pub.Client().ModelUnlock(ctx, adminrpc.UnlockParams{ModelID: model}); err != nil {
		return nil, nil, fmt.Errorf("publisher: unlock the final model: %w", err)
	}
	path := filepath.Join(st.dir, "final-model.safetensors")
	exp, err := st.pub.Client().ModelExport(ctx, model, path)
	if err != nil {
		return nil, nil, fmt.Errorf("publisher: export the final model: %w", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	final, err := fl.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("the final model is not safetensors: %w", err)
	}
	rep.FinalAccuracy = fl.Accuracy(final, st.data.test)
	// The central run of the same schedule (the trainers' epochs and learning rates), at a
	// constant rate, and the best of a sweep.
	central, err := DefaultSchedule.Central(st.data.train, rounds)
	if err != nil {
		return nil, nil, err
	}
	rep.CentralAccuracy = fl.Accuracy(central, st.data.test)
	rep.CentralConstantAccuracy = rep.CentralAccuracy
	if !DefaultSchedule.Constant() {
		constant := DefaultSchedule
		constant.Decay = 0
		if central, err = constant.Central(st.data.train, rounds); err != nil {
			return nil, nil, err
		}
		rep.CentralConstantAccuracy = fl.Accuracy(central, st.data.test)
	}
	best, err := DefaultSchedule.CentralBest(st.data.train, st.data.test, rounds)
	if err != nil {
		return nil, nil, err
	}
	rep.CentralBestAccuracy, rep.CentralBest = best.Accuracy, best.String()

	// Every trainer paid for the lineage once: it gets the final version's key without paying.
	for _, tr := range st.trainers {
		if err := fetchOn(ctx, tr, model); err != nil {
			return nil, nil, err
		}
		if _, err := tr.Client().ModelUnlock(ctx, adminrpc.UnlockParams{ModelID: model}); err != nil {
			return nil, nil, fmt.Errorf("%s: unlock the final model: %w", tr.Name, err)
		}
		got, err := tr.Client().ModelExport(ctx, model, filepath.Join(filepath.Dir(tr.Datadir), tr.Name+"-final-model.export"))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: export the final model: %w", tr.Name, err)
		}
		if got.SHA256 == exp.SHA256 {
			rep.ReleasedTo++
		}
	}
	return rep, summary, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
