package campaign

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

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
			if tag := f.opened[k].Campaign; tag == nil || tag.LRDecay != tc.decay || tag.Check() != nil {
				t.Errorf("lr_decay %g: round %d's campaign tag = %+v, want lr_decay %g", tc.decay, k+1, tag, tc.decay)
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

// Each round's campaign tag carries lr_decay, and a coordinator that re-opens round 2 of a
// decaying campaign goes on decaying from the campaign's rate: its round 3 trains with
// learning_rate·lr_decay², not with round 2's rate held constant.
func TestAdoptedCampaignKeepsDecaying(t *testing.T) {
	f := &fakeRounds{accuracy: []float64{0.95}, rounds: map[string]*announce.Round{}, reports: map[string]*store.ReportRecord{}}
	tag := func(i int) *announce.CampaignTag {
		return &announce.CampaignTag{ID: "00112233aabbccdd", Index: i, Rounds: 3, RoundSeconds: 120, LRDecay: 0.5}
	}
	m0, m1 := []byte(fmt.Sprintf("%032d", 100)), []byte(fmt.Sprintf("%032d", 101))
	f.hear(
		announce.Round{ID: fmt.Sprintf("%032x", 0xa1), Model: m0, NewModel: m1, Coordinator: "silent", State: announce.RoundDone, OpenedAt: 1, LearningRate: 0.4, Campaign: tag(1)},
		announce.Round{ID: fmt.Sprintf("%032x", 0xa2), Model: m1, Coordinator: "silent", State: announce.RoundFailed, Error: "its coordinator went silent", OpenedAt: 2, LearningRate: 0.2, Campaign: tag(2)},
	)
	reopened := fmt.Sprintf("%032x", 0xb2)
	f.mu.Lock()
	f.rounds[reopened] = &announce.Round{ID: reopened, Model: m1, Coordinator: "self", State: announce.RoundOpen, Reopens: fmt.Sprintf("%032x", 0xa2), OpenedAt: 3,
		MinUpdates: 2, Rule: "fedavg", Epochs: 5, LearningRate: 0.2, Campaign: tag(2)}
	f.mu.Unlock()
	s, _ := newService(t, f)
	var rec *Record
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if rec, err = s.Get("00112233aabbccdd"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the campaign of the re-opened round was never adopted")
		}
	}
	if rec.Params.LRDecay != 0.5 || math.Abs(rec.Params.LearningRate-0.4) > 1e-12 {
		t.Fatalf("adopted params: learning_rate %g, lr_decay %g, want the campaign's 0.4 and 0.5", rec.Params.LearningRate, rec.Params.LRDecay)
	}
	f.mu.Lock()
	r := f.rounds[reopened]
	r.State, r.NewModel = announce.RoundDone, []byte(fmt.Sprintf("%032d", 102))
	f.reports[reopened] = &store.ReportRecord{RoundID: reopened, Metrics: map[string]float64{"accuracy": 0.93}}
	f.mu.Unlock()
	waitState(t, s, rec.ID, Done)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.opened) != 1 || math.Abs(f.opened[0].LearningRate-0.1) > 1e-12 || f.opened[0].Campaign.LRDecay != 0.5 {
		t.Fatalf("round 3 after adoption opened with learning_rate %g (tag %+v), want 0.4·0.5² = 0.1 and the tag's lr_decay", f.opened[0].LearningRate, f.opened[0].Campaign)
	}
}
