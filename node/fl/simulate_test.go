package fl

import (
	"math"
	"testing"
)

// A simulation's LRDecay shrinks the trainers' rate every round: with a tiny decay the rounds
// after the first hardly move the model, while without it they do.
func TestSimulationDecaysTheLearningRate(t *testing.T) {
	d := &Dataset{Classes: 2}
	for i := range 40 {
		x := float64(i%2)*2 - 1
		d.X, d.Y = append(d.X, []float64{x, 0.5 * x}), append(d.Y, i%2)
	}
	sim := Simulation{Shards: []*Dataset{d}, Test: d, Rounds: 1, Epochs: 2, Batch: 8, LR: 0.5, Seed: 1}
	one, err := sim.Run(NewLogReg(2, 2))
	if err != nil {
		t.Fatal(err)
	}
	dist := func(a, b *File) float64 {
		var s float64
		for i := range a.Tensors {
			for j := range a.Tensors[i].Elements() {
				s += math.Abs(a.Tensors[i].At(j) - b.Tensors[i].At(j))
			}
		}
		return s
	}
	sim.Rounds = 4
	constant, err := sim.Run(NewLogReg(2, 2))
	if err != nil {
		t.Fatal(err)
	}
	sim.LRDecay = 1e-6
	decayed, err := sim.Run(NewLogReg(2, 2))
	if err != nil {
		t.Fatal(err)
	}
	if got := dist(decayed.Final, one.Final); got > 1e-4 {
		t.Errorf("with LRDecay 1e-6, 4 rounds moved the model %g from the first round's, want ≈ 0", got)
	}
	if got := dist(constant.Final, one.Final); got < 1e-2 {
		t.Errorf("without decay, 4 rounds moved the model only %g from the first round's", got)
	}
}
