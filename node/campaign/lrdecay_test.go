package campaign

import (
	"errors"
	"math"
	"testing"

	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/store"
)

// A campaign with lr_decay opens its round n (from 1, a round the evaluation floor refused
// counting too) with learning_rate·lr_decay^(n−1); without it every round has the campaign's
// rate.
func TestCampaignDecaysTheLearningRate(t *testing.T) {
	for _, tc := range []struct {
		decay float64
		want  []float64
	}{
		{0.5, []float64{0.4, 0.2, 0.1, 0.05}},
		{0, []float64{0.4, 0.4, 0.4, 0.4}},
	} {
		f := &fakeRounds{accuracy: []float64{0.90, -0.80, 0.93, 0.95}, rounds: map[string]*announce.Round{}, reports: map[string]*store.ReportRecord{}}
		s, _ := newService(t, f)
		rec, err := s.Begin(t.Context(), Params{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 1, LearningRate: 0.4, Epochs: 5}, Rounds: 4, LRDecay: tc.decay})
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, s, rec.ID, Done)
		f.mu.Lock()
		for k, want := range tc.want {
			if got := f.opened[k].LearningRate; math.Abs(got-want) > 1e-12 || f.opened[k].Epochs != 5 {
				t.Errorf("lr_decay %g: round %d opened with learning_rate %g (epochs %d), want %g (epochs 5)", tc.decay, k+1, got, f.opened[k].Epochs, want)
			}
		}
		f.mu.Unlock()
	}
}

// A decayed rate never reaches 0, which a round reads as "the trainer's own".
func TestDecayedLearningRateHasAFloor(t *testing.T) {
	p := StoredParams{LearningRate: 0.5, LRDecay: 1e-3}
	if got := p.roundAt("m", 201).LearningRate; got != MinDecayedLearningRate {
		t.Errorf("roundAt(201).LearningRate = %g, want %g", got, MinDecayedLearningRate)
	}
	if got := p.roundAt("m", 1).LearningRate; got != 0.5 {
		t.Errorf("roundAt(1).LearningRate = %g, want 0.5", got)
	}
}

// lr_decay out of range, or without a learning_rate to decay, is refused with invalid_params.
func TestCampaignRefusesABadDecay(t *testing.T) {
	f := &fakeRounds{accuracy: []float64{0.9}, rounds: map[string]*announce.Round{}, reports: map[string]*store.ReportRecord{}}
	s, _ := newService(t, f)
	for _, p := range []Params{
		{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 1, LearningRate: 0.5}, Rounds: 3, LRDecay: 1.5},
		{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 1, LearningRate: 0.5}, Rounds: 3, LRDecay: -0.1},
		{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 1, LearningRate: 0.5}, Rounds: 3, LRDecay: math.NaN()},
		{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 1}, Rounds: 3, LRDecay: 0.8},
	} {
		_, err := s.Begin(t.Context(), p)
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Code != apierr.InvalidParams {
			t.Errorf("Begin(lr_decay %g, learning_rate %g) = %v, want invalid_params", p.LRDecay, p.Round.LearningRate, err)
		}
	}
	if len(f.opened) != 0 {
		t.Errorf("%d rounds opened for refused campaigns, want 0", len(f.opened))
	}
}
