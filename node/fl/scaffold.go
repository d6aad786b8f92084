package fl

import (
	"context"
	"fmt"
	"math"
)

// SCAFFOLD (Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled Averaging for Federated
// Learning"), option II: each trainer keeps a control variate c_i, the server one c, both shaped
// as the model; every local step descends g + (c − c_i), and after K local steps from x to y at
// rate η the trainer's becomes c_i⁺ = c_i − c + (x − y)/(K·η). Control variates are Files with
// the model's tensor names and shapes, in float64.

// ZeroControl is a zero control variate shaped as model (float64 tensors of its names and
// shapes).
func ZeroControl(model *File) *File {
	out := &File{Tensors: make([]Tensor, len(model.Tensors)), Metadata: map[string]string{}}
	for i, t := range model.Tensors {
		out.Tensors[i] = NewTensor(t.Name, F64, append([]int(nil), t.Shape...)...)
	}
	return out
}

// SameShapes reports whether a and b hold tensors of the same names and shapes, in order.
func SameShapes(a, b *File) bool {
	if a == nil || b == nil || len(a.Tensors) != len(b.Tensors) {
		return false
	}
	for i := range a.Tensors {
		ta, tb := &a.Tensors[i], &b.Tensors[i]
		if ta.Name != tb.Name || len(ta.Shape) != len(tb.Shape) {
			return false
		}
		for j := range ta.Shape {
			if ta.Shape[j] != tb.Shape[j] {
				return false
			}
		}
	}
	return true
}

// combine returns ZeroControl(like) filled, element by element in tensor order, with f of the
// elements of the inputs (each shaped as like).
func combine(like *File, f func(v []float64) float64, in ...*File) (*File, error) {
	for _, x := range in {
		if !SameShapes(x, like) {
			return nil, fmt.Errorf("a SCAFFOLD control variate's tensors are not the model's")
		}
	}
	out := ZeroControl(like)
	v := make([]float64, len(in))
	for i := range out.Tensors {
		for j := range out.Tensors[i].Elements() {
			for k, x := range in {
				v[k] = x.Tensors[i].At(j)
			}
			r := f(v)
			if math.IsNaN(r) || math.IsInf(r, 0) {
				return nil, fmt.Errorf("a SCAFFOLD control variate is not finite")
			}
			out.Tensors[i].Set(j, r)
		}
	}
	return out, nil
}

// LocalSteps is the number of SGD steps the built-in trainer takes over n rows: epochs ×
// ⌈n / batch⌉ (K_i).
func LocalSteps(n, epochs, batch int) int {
	if batch <= 0 || n <= 0 || epochs <= 0 {
		return 0
	}
	return epochs * ((n + batch - 1) / batch)
}

// ScaffoldCorrection is the term every local step adds to the gradient: c − c_i.
func ScaffoldCorrection(c, ci *File) (*File, error) {
	return combine(c, func(v []float64) float64 { return v[0] - v[1] }, c, ci)
}

// ScaffoldUpdate is the trainer's new control variate after steps local steps at rate lr from
// base (x) to trained (y): c_i⁺ = c_i − c + (x − y)/(steps·lr).
func ScaffoldUpdate(ci, c, base, trained *File, steps int, lr float64) (*File, error) {
	if steps <= 0 || lr <= 0 {
		return nil, fmt.Errorf("SCAFFOLD needs a positive number of local steps and learning rate")
	}
	k := 1 / (float64(steps) * lr)
	return combine(ci, func(v []float64) float64 { return v[0] - v[1] + (v[2]-v[3])*k }, ci, c, base, trained)
}

// ScaffoldServerControl is client-side SCAFFOLD's server control variate, derived from the two
// latest versions of a lineage the server published with plain FedAvg at server rate serverLR:
// c ≈ (parent − base)/(serverLR·steps·lr), steps and lr being the trainer's own local steps and
// rate. With full participation and equal local steps it equals the server's c of option II.
func ScaffoldServerControl(parent, base *File, serverLR float64, steps int, lr float64) (*File, error) {
	if steps <= 0 || lr <= 0 || serverLR <= 0 {
		return nil, fmt.Errorf("SCAFFOLD needs a positive number of local steps, learning rate and server rate")
	}
	k := 1 / (serverLR * float64(steps) * lr)
	return combine(base, func(v []float64) float64 { return (v[0] - v[1]) * k }, parent, base)
}

// TrainScaffoldContext is TrainProxContext with SCAFFOLD's correction corr (c − c_i, shaped as
// model; nil: none) added to the gradient of every mini-batch. The built-in MLP trainer takes no
// correction.
func TrainScaffoldContext(ctx context.Context, model *File, d *Dataset, epochs, batch int, lr float64, seed uint64, mu float64, corr *File) (*File, error) {
	if corr == nil {
		return TrainProxContext(ctx, model, d, epochs, batch, lr, seed, mu)
	}
	if model.Tensor("w1") != nil {
		return nil, fmt.Errorf("the built-in MLP trainer has no SCAFFOLD correction: use strategy fedavg, fedavgm or fedadam, or a logistic-regression model")
	}
	return trainLogReg(ctx, model, d, epochs, batch, lr, seed, mu, corr)
}
