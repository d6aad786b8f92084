package rounds

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
)

// TestTrainRefusesRoundEpochsOverCap: train_run refuses, before fetching anything, a round that
// asks for more epochs than train.max_round_epochs, with one invalid_params error naming the
// round's value, the cap and the key; train_run's own epochs, a round within the cap and cap 0
// pass the check.
func TestTrainRefusesRoundEpochsOverCap(t *testing.T) {
	n := newNode(t, config.RoleTrainer)
	coord := contenttest.NewSigner(t)
	signed, id := coord.Sign(t, versionFor("m", []byte("x")))
	n.catalog.addSigned(t, signed)
	round := func(c byte, epochs int) *announce.Round {
		r := &announce.Round{ID: strings.Repeat(string(c), 32), Model: id[:], Coordinator: coord.ID.String(), MinUpdates: 1,
			Deadline: time.Now().Add(time.Hour).UnixMilli(), Rule: "fedavg", State: announce.RoundOpen, OpenedAt: time.Now().UnixMilli(), Seq: 1, Epochs: epochs}
		if err := n.s.remember(r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if n.s.cfg.Train.MaxRoundEpochs != 50 {
		t.Fatalf("the trainer's cap is %d, want the default 50", n.s.cfg.Train.MaxRoundEpochs)
	}
	greedy := round('a', 60)
	_, err := n.s.Train(t.Context(), TrainParams{RoundID: greedy.ID, Data: "x"})
	if apierr.CodeOf(err) != apierr.InvalidParams || !IsEpochCap(err) {
		t.Fatalf("Train(round asking 60 epochs, cap 50) = %v, want the epoch cap's invalid_params", err)
	}
	for _, want := range []string{"60", "(50)", "train.max_round_epochs", greedy.ID} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not name %q", err, want)
		}
	}
	n.keys.mu.Lock()
	claims := len(n.keys.claims)
	n.keys.mu.Unlock()
	if claims != 0 {
		t.Errorf("a refused round claimed its key (%d claims): the check must come first", claims)
	}
	// train_run's own epochs are the operator's choice: past the cap check (then refused for
	// the key this fake never grants).
	if _, err := n.s.Train(t.Context(), TrainParams{RoundID: greedy.ID, Data: "x", Epochs: 100}); IsEpochCap(err) {
		t.Errorf("Train with train_run's epochs = %v, want no epoch cap", err)
	}
	if _, err := n.s.Train(t.Context(), TrainParams{RoundID: round('b', 50).ID, Data: "x"}); IsEpochCap(err) {
		t.Errorf("Train(round of 50 epochs, cap 50) = %v, want no epoch cap", err)
	}
	n.s.cfg.Train.MaxRoundEpochs = 0
	if _, err := n.s.Train(t.Context(), TrainParams{RoundID: greedy.ID, Data: "x"}); IsEpochCap(err) {
		t.Errorf("Train with cap 0 = %v, want no cap", err)
	}
}

// TestTrainBuiltinHonoursTimeout: the built-in trainer stops at train.timeout with one error
// naming it, as an exec hook is killed at it.
func TestTrainBuiltinHonoursTimeout(t *testing.T) {
	n := newNode(t, config.RoleTrainer)
	data := filepath.Join(t.TempDir(), "data.csv")
	if err := os.WriteFile(data, []byte("0,0,0,1,0\n1,0,0,0,1\n0,1,0,0,2\n0,0,1,0,0\n1,1,0,0,1\n0,1,1,0,2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &announce.Round{ID: "0123456789abcdef0123456789abcdef"}
	n.s.cfg.Train.Timeout = config.Duration{Duration: time.Nanosecond}
	_, _, err := n.s.trainBuiltin(t.Context(), fl.NewLogReg(4, 3), data, r, TrainParams{Epochs: 1000})
	if err == nil || !strings.Contains(err.Error(), "train.timeout") {
		t.Fatalf("trainBuiltin past train.timeout = %v, want an error naming train.timeout", err)
	}
	n.s.cfg.Train.Timeout = config.Duration{Duration: time.Minute}
	if _, _, err := n.s.trainBuiltin(t.Context(), fl.NewLogReg(4, 3), data, r, TrainParams{Epochs: 2}); err != nil {
		t.Errorf("trainBuiltin within train.timeout = %v", err)
	}
}
