package devnet

import (
	"math"
	"testing"
)

// The default campaign carries the devnet's trainer settings and its strategy at a constant
// rate, and a schedule decays the learning rate once per round.
func TestDefaultCampaign(t *testing.T) {
	p := DefaultCampaign()
	if p.Strategy != DefaultStrategy.Strategy || p.ServerLR != DefaultStrategy.ServerLR || p.Momentum != DefaultStrategy.Momentum {
		t.Errorf("DefaultCampaign() strategy = %+v, want DefaultStrategy %+v", p.StrategyParams, DefaultStrategy)
	}
	if p.Epochs != LocalEpochs || p.BatchSize != BatchSize || p.LearningRate != LearningRate || p.LRDecay != 0 {
		t.Errorf("DefaultCampaign() = epochs %d batch %d lr %g decay %g, want %d %d %g and no decay", p.Epochs, p.BatchSize, p.LearningRate, p.LRDecay, LocalEpochs, BatchSize, LearningRate)
	}
	s := Schedule{Epochs: 5, Batch: 32, LR: 0.5, Decay: 0.5}
	for r, want := range []float64{0.5, 0.25, 0.125} {
		if got := s.At(r); math.Abs(got-want) > 1e-12 {
			t.Errorf("At(%d) = %g, want %g", r, got, want)
		}
	}
	for _, d := range []float64{0, 1} {
		if got := (Schedule{LR: 0.5, Decay: d}).At(7); got != 0.5 {
			t.Errorf("decay %g: At(7) = %g, want the constant 0.5", d, got)
		}
	}
}
