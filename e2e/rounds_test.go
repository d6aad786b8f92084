package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/califusion/califusion/protocols/icp/icptest"
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
)

// roundNet is a coordinator (also the publisher unless pub is separate) and trainers that all
// paid for one initial model.
type roundNet struct {
	c        *cluster
	coord    *harness.Node
	pub      *harness.Node
	trainers []*harness.Node
	model    string
	base     *fl.File
	shards   []*fl.Dataset
	replica  *icptest.Sim // the ICP emulator every node uses
}

// newRoundNet starts the network: each trainer gets a digits shard as train.data (configure
// may change a trainer's config before it starts), fetches, pays for and unlocks the model. With
// separatePublisher the model comes from a publisher node that is not the coordinator.
func newRoundNet(t *testing.T, trainers int, separatePublisher bool, configure func(i int, cfg *config.Config)) *roundNet {
	t.Helper()
	replica := startReplica(t)
	rn := &roundNet{c: newCluster(t), replica: replica}
	if separatePublisher {
		rn.coord = rn.c.NewNodes("coord", 1, "coordinator")[0]
		rn.pub = rn.c.NewNodes("pub", 1, "publisher")[0]
	} else {
		rn.coord = rn.c.NewNodes("coord", 1, "publisher", "coordinator")[0]
		rn.pub = rn.coord
	}
	rn.trainers = rn.c.NewNodes("tr", trainers, "trainer")
	others := rn.trainers
	if separatePublisher {
		others = append([]*harness.Node{rn.pub}, rn.trainers...)
	}
	useReplica(t, replica.URL(), append([]*harness.Node{rn.coord}, others...)...)
	all, err := devnet.LoadDigits()
	if err != nil {
		t.Fatal(err)
	}
	train, _ := all.Split(1, 0.2)
	rn.shards = train.Shards(trainers, 1, 0.5)
	for i, tr := range rn.trainers {
		path := filepath.Join(tr.Datadir, "shard.csv")
		if err := devnet.WriteCSV(path, rn.shards[i]); err != nil {
			t.Fatal(err)
		}
		if err := tr.EditConfig(func(cfg *config.Config) {
			cfg.Train.Data, cfg.Train.Epochs, cfg.Train.LearningRate = path, 3, 0.5
			if configure != nil {
				configure(i, cfg)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	rn.c.start(rn.coord)
	for _, n := range others {
		rn.c.start(n, "--bootstrap", rn.coord.P2PAddr())
		replica.Mint(principal.MustDecode(n.Info().ICPPrincipal), 10_000_000)
	}
	// Every node must know the coordinator before the publisher escrows the key with it.
	waitHeard(t, rn.coord, others...)
	rn.base = fl.NewLogReg(devnet.DigitsFeatures, devnet.DigitsClasses)
	raw, err := rn.base.Encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := rn.pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "digits", Price: "1000", Coordinators: []string{rn.coord.Info().PeerID}})
	if err != nil {
		t.Fatal(err)
	}
	rn.model = res.ModelID
	for _, tr := range rn.trainers {
		waitFor(t, 30*time.Second, func() error { _, err := tr.Client().ModelGet(t.Context(), rn.model); return err })
		job, err := tr.Client().ModelFetch(t.Context(), rn.model)
		if err != nil {
			t.Fatal(err)
		}
		waitJob(t, tr, job.JobID, 30*time.Second)
		if _, err := tr.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: rn.model}); err != nil {
			t.Fatalf("%s: unlock: %v", tr.Name, err)
		}
	}
	return rn
}

// rejectedReason returns data.reason of an update_rejected error.
func rejectedReason(err error) string {
	var e *adminrpc.Error
	if !errors.As(err, &e) {
		return ""
	}
	raw, _ := json.Marshal(e.Data)
	var d adminrpc.RejectedData
	json.Unmarshal(raw, &d)
	return d.Reason
}

// TestRoundPoisonedAndKilledTrainers: three trainers over processes. One trains and is killed
// (kill -9) before it submits; one submits an update scaled ×1000, which the norm bound rejects
// (and its retry is a duplicate); the honest one's update is accepted and, the minimum of one
// being met, aggregated into a new version whose report names each verdict. A late submission is
// refused, and a second round whose minimum is never met fails clearly at its deadline.
func TestRoundPoisonedAndKilledTrainers(t *testing.T) {
	poisonPath := filepath.Join(t.TempDir(), "poisoned.safetensors")
	rn := newRoundNet(t, 3, false, func(i int, cfg *config.Config) {
		if i == 1 { // the poisoner's "training" hands in a prepared file
			cfg.Train.Hook, cfg.Train.Command = config.HookExec, []string{"cp", poisonPath, "{out}"}
		}
	})
	honest, poisoner, victim := rn.trainers[0], rn.trainers[1], rn.trainers[2]
	ctx := t.Context()

	// The poisoned update: an honest one with its delta scaled ×1000.
	upd, err := fl.TrainLogReg(rn.base, rn.shards[1], 3, 32, 0.5, 9)
	if err != nil {
		t.Fatal(err)
	}
	for i := range upd.Tensors {
		for j := 0; j < upd.Tensors[i].Elements(); j++ {
			upd.Tensors[i].Set(j, 1000*upd.Tensors[i].At(j)) // the base is all zeros
		}
	}
	raw, _ := upd.Encode()
	if err := os.WriteFile(poisonPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	open, err := rn.coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: rn.model, MinUpdates: 1, Deadline: "2m", Rule: "fedavg", ClipNorm: 20})
	if err != nil {
		t.Fatal(err)
	}
	// The victim trains, then dies before submitting.
	if _, err := victim.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID}); err != nil {
		t.Fatalf("victim train_run: %v", err)
	}
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	// The poisoner's update passes its own node (no bound there) and is rejected by the norm bound.
	pr, err := poisoner.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
	if err != nil {
		t.Fatalf("poisoner train_run: %v", err)
	}
	_, err = poisoner.Client().UpdateSubmit(ctx, open.RoundID, pr.UpdateID)
	if adminrpc.CodeOf(err) != adminrpc.CodeUpdateRejected || rejectedReason(err) != "norm" {
		t.Fatalf("poisoned update_submit = %v, want update_rejected (1007) with reason norm", err)
	}
	if _, err = poisoner.Client().UpdateSubmit(ctx, open.RoundID, pr.UpdateID); adminrpc.CodeOf(err) != adminrpc.CodeConflict {
		t.Errorf("resubmitting a rejected update = %v, want conflict (1010)", err)
	}
	rounds, err := rn.coord.Client().RoundList(ctx, rn.model)
	if err != nil || len(rounds) != 1 || rounds[0].State != "open" || rounds[0].Updates != 0 {
		t.Fatalf("round_list after the rejection = %+v, %v; want the round still open with 0 updates", rounds, err)
	}
	// The honest update meets the minimum: the round aggregates into a new version.
	hr, err := honest.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
	if err != nil {
		t.Fatalf("honest train_run: %v", err)
	}
	if hr.Samples != uint64(len(rn.shards[0].X)) {
		t.Errorf("train_run samples = %d, want the shard's %d rows", hr.Samples, len(rn.shards[0].X))
	}
	sub, err := honest.Client().UpdateSubmit(ctx, open.RoundID, hr.UpdateID)
	if err != nil || !sub.Accepted || sub.Norm <= 0 || sub.Norm > 20 {
		t.Fatalf("honest update_submit = %+v, %v; want accepted with a norm within the bound", sub, err)
	}
	closed, err := rn.coord.Client().RoundClose(ctx, open.RoundID)
	if err != nil {
		t.Fatalf("round_close: %v", err)
	}
	rep, err := rn.coord.Client().RoundReport(ctx, open.RoundID)
	if err != nil {
		t.Fatal(err)
	}
	if rep.NewModel != closed.ModelID || rep.BaseModel != rn.model || rep.Rule != "fedavg" || len(rep.Participants) != 2 || rep.AggregateSHA256 == "" {
		t.Fatalf("report = %+v, want the new model, the base, fedavg, two participants and the aggregate's hash", rep)
	}
	verdicts := map[string]adminrpc.Participant{}
	for _, p := range rep.Participants {
		verdicts[p.PeerID] = p
	}
	if p := verdicts[honest.Info().PeerID]; !p.Accepted || p.Samples != hr.Samples {
		t.Errorf("honest participant = %+v, want accepted with %d samples", p, hr.Samples)
	}
	if p := verdicts[poisoner.Info().PeerID]; p.Accepted || p.Reason != "norm" || p.Norm < 1000 {
		t.Errorf("poisoned participant = %+v, want rejected for its norm", p)
	}
	if _, ok := verdicts[victim.Info().PeerID]; ok {
		t.Errorf("the killed trainer appears in the report")
	}
	// The same through the CLI.
	text := cli(t, false, "--datadir", rn.coord.Datadir, "round", "report", open.RoundID)
	if !strings.Contains(text, "rejected: norm") || !strings.Contains(text, closed.ModelID) {
		t.Errorf("round report (CLI) does not show the verdicts and the new model:\n%s", text)
	}
	var listed []adminrpc.RoundInfo
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", honest.Datadir, "--json", "round", "ls")), &listed); err != nil || len(listed) != 1 {
		t.Errorf("round ls --json on a trainer = %+v, %v", listed, err)
	}
	if out := cli(t, true, "--datadir", poisoner.Datadir, "update", "submit", open.RoundID, pr.UpdateID); !strings.Contains(out, "1010") && !strings.Contains(out, "done") {
		t.Errorf("update submit (CLI) to a closed round: %s", out)
	}
	got, err := rn.coord.Client().ModelGet(ctx, closed.ModelID)
	if err != nil || got.Parent != rn.model || got.Lineage != rn.model {
		t.Fatalf("model_get(new version) = parent %q lineage %q, %v; want both %s", got.Parent, got.Lineage, err, rn.model)
	}
	// Late: the round is done.
	if _, err := honest.Client().UpdateSubmit(ctx, open.RoundID, hr.UpdateID); adminrpc.CodeOf(err) != adminrpc.CodeConflict || !strings.Contains(err.Error(), "done") {
		t.Errorf("submission after the round closed = %v, want conflict (1010) naming the state", err)
	}

	// A round that needs two updates gets one, and fails at its deadline.
	open2, err := rn.coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: closed.ModelID, MinUpdates: 2, Deadline: "4s", Rule: "median"})
	if err != nil {
		t.Fatal(err)
	}
	hr2, err := honest.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open2.RoundID})
	if err != nil {
		t.Fatalf("train_run on the new version (released by the lineage payment): %v", err)
	}
	if _, err := honest.Client().UpdateSubmit(ctx, open2.RoundID, hr2.UpdateID); err != nil {
		t.Fatal(err)
	}
	if _, err := rn.coord.Client().RoundClose(ctx, open2.RoundID); adminrpc.CodeOf(err) != adminrpc.CodeConflict {
		t.Errorf("round_close below the minimum = %v, want conflict (1010)", err)
	}
	waitFor(t, 30*time.Second, func() error {
		rs, err := honest.Client().RoundList(ctx, closed.ModelID)
		if err != nil || len(rs) != 1 || rs[0].State != "failed" {
			return errf("round_list on a trainer = %+v, %v; want the round failed", rs, err)
		}
		if !strings.Contains(rs[0].Error, "deadline") {
			return errf("failed round's error %q does not say why", rs[0].Error)
		}
		return nil
	})
	if _, err := rn.coord.Client().RoundReport(ctx, open2.RoundID); adminrpc.CodeOf(err) != adminrpc.CodeNotFound {
		t.Errorf("round_report of a failed round = %v, want not_found", err)
	}
}

// TestRoundSurvivesCoordinatorCrash: a coordinator that is not the publisher (it fetches the
// model and holds its escrowed key) is killed (-9) after accepting one of the two updates a round
// needs. After a restart the round is still open with that update (folded back into the running
// average from its file), the second one completes it, the aggregate is exactly the weighted mean
// of both, and the publisher receives the new version without paying.
func TestRoundSurvivesCoordinatorCrash(t *testing.T) {
	rn := newRoundNet(t, 2, true, nil)
	ctx := t.Context()
	a, b := rn.trainers[0], rn.trainers[1]
	open, err := rn.coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: rn.model, MinUpdates: 2, Deadline: "3m", Rule: "fedavg", ClipNorm: 50})
	if err != nil {
		t.Fatal(err)
	}
	ra, err := a.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client().UpdateSubmit(ctx, open.RoundID, ra.UpdateID); err != nil {
		t.Fatal(err)
	}
	rb, err := b.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
	if err != nil {
		t.Fatal(err)
	}
	if err := rn.coord.Kill(); err != nil {
		t.Fatal(err)
	}
	// While the coordinator is down the submission fails clearly and can be retried.
	if _, err := b.Client().UpdateSubmit(ctx, open.RoundID, rb.UpdateID); adminrpc.CodeOf(err) != adminrpc.CodeUnavailable {
		t.Errorf("update_submit with the coordinator down = %v, want unavailable (1008)", err)
	}
	rn.c.start(rn.coord)
	rounds, err := rn.coord.Client().RoundList(ctx, rn.model)
	if err != nil || len(rounds) != 1 || rounds[0].State != "open" || rounds[0].Updates != 1 {
		t.Fatalf("round_list after the restart = %+v, %v; want the round open with its accepted update", rounds, err)
	}
	waitFor(t, 30*time.Second, func() error {
		_, err := b.Client().UpdateSubmit(ctx, open.RoundID, rb.UpdateID)
		return err
	})
	closed, err := rn.coord.Client().RoundClose(ctx, open.RoundID)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := rn.coord.Client().RoundReport(ctx, open.RoundID)
	if err != nil || rep.NewModel != closed.ModelID || len(rep.Participants) != 2 || rep.Rule != "fedavg" {
		t.Fatalf("report = %+v, %v; want both updates aggregated by fedavg", rep, err)
	}
	want := fl.NewFedAvg(rn.base)
	for _, u := range []struct {
		n   *harness.Node
		res adminrpc.TrainRunResult
	}{{a, ra}, {b, rb}} {
		raw, err := os.ReadFile(filepath.Join(u.n.Datadir, "updates", u.res.UpdateID+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := fl.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		want.Add(f, u.res.Samples)
	}
	wantFile, _ := want.Result()
	wantFile.Metadata = nil
	aggPath := filepath.Join(t.TempDir(), "aggregate.safetensors")
	if _, err := rn.coord.Client().ModelExport(ctx, closed.ModelID, aggPath); err != nil {
		t.Fatal(err)
	}
	rawAgg, _ := os.ReadFile(aggPath)
	got, err := fl.Parse(rawAgg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range wantFile.Tensors {
		if !bytes.Equal(got.Tensors[i].Data, wantFile.Tensors[i].Data) {
			t.Errorf("aggregate tensor %s is not the weighted mean of the two updates", wantFile.Tensors[i].Name)
		}
	}
	for _, p := range rep.Participants {
		if !p.Accepted {
			t.Errorf("participant %+v not accepted", p)
		}
	}
	// The new version is the coordinator's, paid to the publisher's account, released to the
	// publisher for free.
	var version adminrpc.ModelDetail
	waitFor(t, 30*time.Second, func() error { version, err = rn.pub.Client().ModelGet(ctx, closed.ModelID); return err })
	base, _ := rn.pub.Client().ModelGet(ctx, rn.model)
	if version.Publisher != rn.coord.Info().PeerID || version.Payee != base.Payee || version.Price != base.Price {
		t.Errorf("new version: publisher %s payee %+v price %s; want the coordinator, and the base's payee %+v and price %s", version.Publisher, version.Payee, version.Price, base.Payee, base.Price)
	}
	job, err := rn.pub.Client().ModelFetch(ctx, closed.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, rn.pub, job.JobID, 30*time.Second)
	before, _ := rn.pub.Client().LedgerBalance(ctx)
	if _, err := rn.pub.Client().ModelUnlock(ctx, adminrpc.UnlockParams{ModelID: closed.ModelID}); err != nil {
		t.Fatalf("publisher unlocking the aggregate of its model: %v", err)
	}
	after, _ := rn.pub.Client().LedgerBalance(ctx)
	if before.Balance != after.Balance {
		t.Errorf("the publisher paid for its own lineage: balance %s → %s", before.Balance, after.Balance)
	}
	if _, err := rn.pub.Client().ModelExport(ctx, closed.ModelID, filepath.Join(t.TempDir(), "v2.safetensors")); err != nil {
		t.Errorf("publisher export of the new version: %v", err)
	}
}

// TestCoordinatorCrashAfterPublishingAggregate: the coordinator dies right after it published a
// round's aggregate and recorded it (failpoint aggregate-published), before the report. After a
// restart the round ends with that same version: no second version is published.
func TestCoordinatorCrashAfterPublishingAggregate(t *testing.T) {
	rn := newRoundNet(t, 1, false, nil)
	ctx := t.Context()
	tr := rn.trainers[0]
	if err := rn.coord.Stop(); err != nil {
		t.Fatal(err)
	}
	rn.coord.Env = []string{"CALIFUSION_CRASH_AT=aggregate-published"}
	rn.c.start(rn.coord)
	if _, err := tr.Client().NodeConnect(ctx, rn.coord.P2PAddr()); err != nil {
		t.Fatal(err)
	}
	open, err := rn.coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: rn.model, MinUpdates: 1, Deadline: "3m", Rule: "fedavg"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Client().UpdateSubmit(ctx, open.RoundID, res.UpdateID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error {
		if _, err := rn.coord.Client().NodeInfo(ctx); err == nil {
			return errf("the coordinator is still answering; it should have crashed after publishing")
		}
		return nil
	})
	rn.coord.Kill() // reap the crashed process
	rn.coord.Env = nil
	rn.c.start(rn.coord)
	closed, err := rn.coord.Client().RoundClose(ctx, open.RoundID)
	if err != nil {
		t.Fatalf("round_close after the restart: %v", err)
	}
	rep, err := rn.coord.Client().RoundReport(ctx, open.RoundID)
	if err != nil || rep.NewModel != closed.ModelID || rep.AggregateSHA256 == "" || len(rep.Participants) != 1 {
		t.Fatalf("report after the restart = %+v, %v", rep, err)
	}
	models, err := rn.coord.Client().ModelList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var versions []string
	for _, m := range models {
		if m.Parent == rn.model {
			versions = append(versions, m.ModelID)
		}
	}
	if len(versions) != 1 || versions[0] != closed.ModelID {
		t.Errorf("versions of the base after the crash = %v, want exactly the recorded %s", versions, closed.ModelID)
	}
}

// evalOnCoordinator gives the coordinator held-out digits as train.eval_data (restarting it),
// so it scores each aggregate and refuses one that falls below its base (the evaluation floor).
func (rn *roundNet) evalOnCoordinator(t *testing.T) {
	t.Helper()
	all, err := devnet.LoadDigits()
	if err != nil {
		t.Fatal(err)
	}
	_, test := all.Split(1, 0.2)
	evalPath := filepath.Join(t.TempDir(), "eval.csv")
	if err := devnet.WriteCSV(evalPath, test); err != nil {
		t.Fatal(err)
	}
	if err := rn.coord.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := rn.coord.EditConfig(func(cfg *config.Config) { cfg.Train.EvalData = evalPath }); err != nil {
		t.Fatal(err)
	}
	rn.c.start(rn.coord)
	for _, tr := range rn.trainers {
		if _, err := tr.Client().NodeConnect(t.Context(), rn.coord.P2PAddr()); err != nil {
			t.Fatal(err)
		}
	}
}
