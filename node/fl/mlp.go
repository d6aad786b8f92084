package fl

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
)

// NewMLP returns a one-hidden-layer perceptron with ReLU: "w1" [hidden, features], "b1"
// [hidden], "w2" [classes, hidden], "b2" [classes], float32, with small random first-layer
// weights from seed (a zero start would never break symmetry).
func NewMLP(features, hidden, classes int, seed uint64) *File {
	f := &File{Tensors: []Tensor{
		NewTensor("b1", F32, hidden), NewTensor("b2", F32, classes),
		NewTensor("w1", F32, hidden, features), NewTensor("w2", F32, classes, hidden),
	}, Metadata: map[string]string{}}
	rng := rand.New(rand.NewPCG(seed, 4))
	for _, name := range []string{"w1", "w2"} {
		t := f.Tensor(name)
		scale := math.Sqrt(2 / float64(t.Shape[1]))
		for i := 0; i < t.Elements(); i++ {
			t.Set(i, rng.NormFloat64()*scale)
		}
	}
	return f
}

type mlp struct {
	w1, b1, w2, b2 []float64
	f, h, c        int
}

func loadMLP(m *File) (*mlp, error) {
	w1, b1, w2, b2 := m.Tensor("w1"), m.Tensor("b1"), m.Tensor("w2"), m.Tensor("b2")
	if w1 == nil || b1 == nil || w2 == nil || b2 == nil || len(w1.Shape) != 2 || len(w2.Shape) != 2 || w2.Shape[1] != w1.Shape[0] {
		return nil, fmt.Errorf("model is not an MLP (w1 [H,F], b1 [H], w2 [C,H], b2 [C])")
	}
	get := func(t *Tensor) []float64 {
		out := make([]float64, t.Elements())
		for i := range out {
			out[i] = t.At(i)
		}
		return out
	}
	return &mlp{w1: get(w1), b1: get(b1), w2: get(w2), b2: get(b2), h: w1.Shape[0], f: w1.Shape[1], c: w2.Shape[0]}, nil
}

// forward computes hidden activations a and class probabilities p for x.
func (n *mlp) forward(x, a, p []float64) {
	for j := 0; j < n.h; j++ {
		z := n.b1[j]
		for k, v := range x {
			z += n.w1[j*n.f+k] * v
		}
		a[j] = math.Max(0, z)
	}
	softmax(n.w2, n.b2, a, p) // the output layer is a logistic regression on the activations
}

// TrainMLP runs minibatch SGD with backpropagation on a copy of model, the first layer in the
// data's standardised coordinates (preconditioner).
func TrainMLP(model *File, d *Dataset, epochs, batch int, lr float64, seed uint64) (*File, error) {
	return trainMLP(context.Background(), model, d, epochs, batch, lr, seed)
}

// trainMLP is TrainMLP that stops, with ctx's error, when ctx ends (looked at before every
// mini-batch).
func trainMLP(ctx context.Context, model *File, d *Dataset, epochs, batch int, lr float64, seed uint64) (*File, error) {
	n, err := loadMLP(model)
	if err != nil {
		return nil, err
	}
	if len(d.X) == 0 {
		return nil, fmt.Errorf("no training rows")
	}
	if len(d.X[0]) != n.f || d.Classes > n.c {
		return nil, fmt.Errorf("data has %d features and %d classes; the model takes %d and %d", len(d.X[0]), d.Classes, n.f, n.c)
	}
	pc := newPreconditioner(d.X)
	pc.toTrained(n.w1, n.b1)
	x := make([]float64, n.f)
	rng := rand.New(rand.NewPCG(seed, 5))
	a, p, da := make([]float64, n.h), make([]float64, n.c), make([]float64, n.h)
	gw1, gb1, gw2, gb2 := make([]float64, len(n.w1)), make([]float64, n.h), make([]float64, len(n.w2)), make([]float64, n.c)
	for range epochs {
		order := rng.Perm(len(d.X))
		for start := 0; start < len(order); start += batch {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			end := min(start+batch, len(order))
			clear(gw1)
			clear(gb1)
			clear(gw2)
			clear(gb2)
			for _, i := range order[start:end] {
				pc.standardize(d.X[i], x)
				n.forward(x, a, p)
				p[d.Y[i]] -= 1 // dL/dz2
				clear(da)
				for c := 0; c < n.c; c++ {
					gb2[c] += p[c]
					for j := 0; j < n.h; j++ {
						gw2[c*n.h+j] += p[c] * a[j]
						da[j] += p[c] * n.w2[c*n.h+j]
					}
				}
				for j := 0; j < n.h; j++ {
					if a[j] <= 0 {
						continue
					}
					gb1[j] += da[j]
					for k, v := range x {
						gw1[j*n.f+k] += da[j] * v
					}
				}
			}
			s := lr / float64(end-start)
			for i := range n.w1 {
				n.w1[i] -= s * gw1[i]
			}
			for i := range n.b1 {
				n.b1[i] -= s * gb1[i]
			}
			for i := range n.w2 {
				n.w2[i] -= s * gw2[i]
			}
			for i := range n.b2 {
				n.b2[i] -= s * gb2[i]
			}
		}
	}
	pc.toModel(n.w1, n.b1)
	out := NewMLP(n.f, n.h, n.c, 0)
	for name, vals := range map[string][]float64{"w1": n.w1, "b1": n.b1, "w2": n.w2, "b2": n.b2} {
		t := out.Tensor(name)
		for i, v := range vals {
			t.Set(i, v)
		}
	}
	out.Metadata["samples"] = strconv.Itoa(len(d.X))
	return out, nil
}
