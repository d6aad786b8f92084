package fl

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTrainProxContextStops: both built-in trainers return ctx's error once ctx has ended, and
// train as TrainProx does while it has not.
func TestTrainProxContextStops(t *testing.T) {
	d := &Dataset{X: [][]float64{{0, 1}, {1, 0}, {1, 1}}, Y: []int{0, 1, 1}, Classes: 2}
	past, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	for name, m := range map[string]*File{"logreg": NewLogReg(2, 2), "mlp": NewMLP(2, 4, 2, 1)} {
		if _, err := TrainProxContext(past, m, d, 1000, 1, 0.1, 1, 0); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: TrainProxContext(expired ctx) = %v, want context.DeadlineExceeded", name, err)
		}
		got, err := TrainProxContext(t.Context(), m, d, 2, 1, 0.1, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := TrainProx(m, d, 2, 1, 0.1, 1, 0)
		a, _ := got.Encode()
		b, _ := want.Encode()
		if string(a) != string(b) {
			t.Errorf("%s: TrainProxContext trains otherwise than TrainProx", name)
		}
	}
}
