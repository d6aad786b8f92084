package rounds

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/store"
)

// TestFedAvgMStateCarriesAcrossRounds runs two fedavgm rounds (η 1, β 0.5) on one coordinator,
// each with one update one unit above its base: the first publishes base + 1 (zero state), the
// second base + 1.5 (its momentum 0.5·1 + 1), which plain averaging (or a lost state) would make
// base + 1. The published versions hold the model's tensors only.
func TestFedAvgMStateCarriesAcrossRounds(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	strategy := OpenParams{MinUpdates: 1, Deadline: "10m", Strategy: fl.StrategyFedAvgM, ServerLR: 1, Momentum: 0.5}
	base, model, round := roundOn(t, n, strategy)
	r, err := n.s.Get(round)
	if err != nil || r.Strategy != fl.StrategyFedAvgM || r.ServerLR != 1 || r.Momentum != 0.5 {
		t.Fatalf("the opened round = %+v, %v; want its strategy stored", r, err)
	}
	plus := func(v float64) float64 { return v + 1 }
	if got := n.s.handleSubmit(t.Context(), paidTrainer(t, n, model), newSubmit(round, 10, encode(t, variant(t, base, plus)))); got.Code != 0 {
		t.Fatalf("round 1 update: %+v", got)
	}
	v1, agg1 := closeRound(t, n, round)
	expectAll(t, agg1, 1, "round 1: base 0 + η·m, m = Δ = 1")
	if len(agg1.Tensors) != len(base.Tensors) {
		t.Errorf("the published version has %d tensors, the model %d: the optimiser state leaked into it", len(agg1.Tensors), len(base.Tensors))
	}
	var rep store.ReportRecord
	if err := n.st.Get(store.ReportKey(round), &rep); err != nil || rep.Metrics["opt_state_carried"] != 0 {
		t.Fatalf("round 1 report metrics = %v, %v; want opt_state_carried 0", rep.Metrics, err)
	}
	if _, err := os.Stat(n.s.optStatePath(func() []byte { id := mustModelID(t, v1); return id[:] }())); err != nil {
		t.Fatalf("no optimiser state kept for the new version: %v", err)
	}

	p := strategy
	p.ModelID = v1
	round2, err := n.s.Open(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.s.handleSubmit(t.Context(), paidTrainer(t, n, model), newSubmit(round2, 10, encode(t, variant(t, agg1, plus)))); got.Code != 0 {
		t.Fatalf("round 2 update: %+v", got)
	}
	v2, agg2 := closeRound(t, n, round2)
	expectAll(t, agg2, 2.5, "round 2: 1 + η·(β·1 + Δ), Δ = 1")
	if _, err := os.Stat(n.s.optStatePath(func() []byte { id := mustModelID(t, v1); return id[:] }())); !os.IsNotExist(err) {
		t.Errorf("the base version's state is still kept after round 2: %v", err)
	}
	if _, err := os.Stat(n.s.optStatePath(func() []byte { id := mustModelID(t, v2); return id[:] }())); err != nil {
		t.Errorf("no state kept for round 2's version: %v", err)
	}
	if err := n.st.Get(store.ReportKey(round2), &rep); err != nil || rep.Metrics["opt_state_carried"] != 1 {
		t.Fatalf("round 2 report metrics = %v, %v; want opt_state_carried 1", rep.Metrics, err)
	}
}

// TestFedAvgRoundKeepsNoState: a plain round publishes the aggregate itself and keeps no state.
func TestFedAvgRoundKeepsNoState(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	base, model, round := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m"})
	if r, _ := n.s.Get(round); r.Strategy != "" || r.ServerLR != 0 {
		t.Errorf("a plain round carries strategy %q, server_lr %g; want none (its wire form unchanged)", r.Strategy, r.ServerLR)
	}
	n.s.handleSubmit(t.Context(), paidTrainer(t, n, model), newSubmit(round, 10, encode(t, variant(t, base, func(v float64) float64 { return v + 3 }))))
	_, agg := closeRound(t, n, round)
	expectAll(t, agg, 3, "the aggregate itself")
	if entries, _ := os.ReadDir(filepath.Join(n.s.cfg.RoundsDir, optStateDir)); len(entries) != 0 {
		t.Errorf("a plain fedavg round kept %d optimiser states", len(entries))
	}
}

func TestStrategyOpenRefusals(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	_, model, _ := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m"})
	for name, p := range map[string]OpenParams{
		"unknown strategy":   {Strategy: "sgd"},
		"negative server_lr": {Strategy: fl.StrategyFedAvgM, ServerLR: -1},
		"momentum 1":         {Strategy: fl.StrategyFedAvgM, Momentum: 1},
		"beta2 of fedavgm":   {Strategy: fl.StrategyFedAvgM, Beta2: 0.9},
		"tau above 1":        {Strategy: fl.StrategyFedAdam, Tau: 2},
		"negative prox_mu":   {ProxMu: -0.1},
	} {
		p.ModelID, p.MinUpdates, p.Deadline = modelHex(model), 1, "1m"
		_, err := n.s.Open(t.Context(), p)
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Code != apierr.InvalidParams || ae.Message == "" {
			t.Errorf("%s: %v, want invalid_params with a message", name, err)
		}
	}
}

// TestTrainBuiltinTakesTheRoundsProxMu: the built-in trainer trains with the round's prox_mu.
func TestTrainBuiltinTakesTheRoundsProxMu(t *testing.T) {
	n := newNode(t, config.RoleTrainer)
	data := filepath.Join(t.TempDir(), "data.csv")
	if err := os.WriteFile(data, []byte("0,0,0,1,0\n1,0,0,0,1\n0,1,0,0,2\n0,0,1,0,0\n1,1,0,0,1\n0,1,1,0,2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := fl.NewLogReg(4, 3)
	r := &announce.Round{ID: "0123456789abcdef0123456789abcdef", ProxMu: 2}
	got, _, err := n.s.trainBuiltin(t.Context(), base, data, r, TrainParams{})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := fl.LoadCSV(data, n.s.cfg.Train.FeatureScale)
	if err != nil {
		t.Fatal(err)
	}
	cfg := n.s.cfg.Train
	want, err := fl.TrainProx(base, loaded, cfg.Epochs, cfg.BatchSize, cfg.LearningRate, seedFor(r.ID, n.s.cfg.Self), 2)
	if err != nil {
		t.Fatal(err)
	}
	without, _ := fl.TrainProx(base, loaded, cfg.Epochs, cfg.BatchSize, cfg.LearningRate, seedFor(r.ID, n.s.cfg.Self), 0)
	if string(got) != string(encode(t, want)) {
		t.Error("trainBuiltin's update is not the built-in trainer's with the round's prox_mu")
	}
	if string(got) == string(encode(t, without)) {
		t.Error("trainBuiltin ignored the round's prox_mu")
	}
}
