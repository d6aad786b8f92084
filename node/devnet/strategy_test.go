package devnet

import (
	"math"
	"testing"

	"github.com/califusion/califusion/node/fl"
)

// TestStrategyRefMatchesTheServerStep: the devnet's replay of its default strategy gives the
// coordinator's fl.ServerOptimizer.Step over two carried rounds, and restarts from zero momentum
// when the coordinator did.
func TestStrategyRefMatchesTheServerStep(t *testing.T) {
	o := fl.ServerOptimizer{Strategy: DefaultStrategy.Strategy, LR: DefaultStrategy.ServerLR, Beta1: DefaultStrategy.Momentum}
	mk := func(vals ...float64) *fl.File {
		tt := fl.NewTensor("w", fl.F32, len(vals))
		for i, v := range vals {
			tt.Set(i, v)
		}
		return &fl.File{Tensors: []fl.Tensor{tt}, Metadata: map[string]string{}}
	}
	var ref strategyRef
	base := mk(0.5, -1)
	var st *fl.OptState
	for round, agg := range [][]float64{{1, -0.5}, {0, 2}, {0.25, 0.25}} {
		carried := round != 2 // the third round: another coordinator, zero state
		if !carried {
			st = nil
		}
		want, next, err := o.Step(base, mk(agg...), st)
		if err != nil {
			t.Fatal(err)
		}
		got, bound, err := ref.step(base, agg, carried, 0)
		if err != nil {
			t.Fatal(err)
		}
		for k := range got {
			if math.Abs(got[k]-want.Tensors[0].At(k)) > 1e-5 {
				t.Fatalf("round %d: reference %v, the coordinator's step %v", round+1, got, []float64{want.Tensors[0].At(0), want.Tensors[0].At(1)})
			}
		}
		if bound <= 0 || bound > 1e-4 {
			t.Errorf("round %d: bound %g with no quantisation", round+1, bound)
		}
		base, st = want, next
	}
}
