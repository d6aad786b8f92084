package fl

import (
	"fmt"
	"math"
)

// Server-side strategies (Reddi et al. 2021, "Adaptive Federated Optimization"): the round's
// aggregate, whatever its rule, becomes the pseudo-gradient Δ = aggregate − base, and the
// strategy turns Δ into the next version.
const (
	// StrategyFedAvg publishes base + η·Δ (η = 1: the aggregate itself).
	StrategyFedAvg = "fedavg"
	// StrategyFedAvgM keeps a momentum m = β·m + Δ and publishes base + η·m.
	StrategyFedAvgM = "fedavgm"
	// StrategyFedAdam keeps m = β1·m + (1−β1)·Δ and v = β2·v + (1−β2)·Δ² and publishes
	// base + η·m / (√v + τ).
	StrategyFedAdam = "fedadam"
)

// Strategies lists the strategy names.
func Strategies() []string { return []string{StrategyFedAvg, StrategyFedAvgM, StrategyFedAdam} }

// Strategy defaults: a round that names a strategy without its parameters gets these.
const (
	DefaultServerLR       = 1.0
	DefaultMomentum       = 0.9
	DefaultAdamServerLR   = 0.5
	DefaultBeta1          = 0.9
	DefaultBeta2          = 0.99
	DefaultTau            = 0.03
	MaxServerLR           = 100.0
	MaxProxMu             = 100.0
	optStateMomentumName  = "m/"
	optStateVarianceName  = "v/"
	optStateStrategyField = "califusion.strategy"
)

// ServerOptimizer is a round's server-side strategy and its parameters.
type ServerOptimizer struct {
	Strategy string  // fedavg ("" too) | fedavgm | fedadam
	LR       float64 // η, the server learning rate
	Beta1    float64 // the momentum β of fedavgm, β1 of fedadam
	Beta2    float64 // fedadam's β2
	Tau      float64 // fedadam's τ (adaptivity)
}

// WithDefaults fills the parameters left zero with the strategy's defaults.
func (o ServerOptimizer) WithDefaults() ServerOptimizer {
	if o.Strategy == "" {
		o.Strategy = StrategyFedAvg
	}
	if o.LR == 0 {
		o.LR = DefaultServerLR
		if o.Strategy == StrategyFedAdam {
			o.LR = DefaultAdamServerLR
		}
	}
	switch o.Strategy {
	case StrategyFedAvgM:
		if o.Beta1 == 0 {
			o.Beta1 = DefaultMomentum
		}
	case StrategyFedAdam:
		if o.Beta1 == 0 {
			o.Beta1 = DefaultBeta1
		}
		if o.Beta2 == 0 {
			o.Beta2 = DefaultBeta2
		}
		if o.Tau == 0 {
			o.Tau = DefaultTau
		}
	}
	return o
}

// Check refuses, with one sentence, a strategy or parameter out of range (after WithDefaults, or
// as given: zero parameters are accepted as "the default").
func (o ServerOptimizer) Check() error {
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch o.Strategy {
	case "", StrategyFedAvg, StrategyFedAvgM, StrategyFedAdam:
	default:
		return fmt.Errorf("strategy %q is not fedavg, fedavgm or fedadam", o.Strategy)
	}
	switch {
	case !finite(o.LR) || o.LR < 0 || o.LR > MaxServerLR:
		return fmt.Errorf("server_lr %g must be a number in (0, %g] (0: the default)", o.LR, MaxServerLR)
	case !finite(o.Beta1) || o.Beta1 < 0 || o.Beta1 >= 1:
		return fmt.Errorf("momentum (β1) %g must be in [0, 1) (0: the default)", o.Beta1)
	case !finite(o.Beta2) || o.Beta2 < 0 || o.Beta2 >= 1:
		return fmt.Errorf("beta2 %g must be in [0, 1) (0: the default)", o.Beta2)
	case !finite(o.Tau) || o.Tau < 0 || o.Tau > 1:
		return fmt.Errorf("tau %g must be in (0, 1] (0: the default)", o.Tau)
	case o.Strategy != StrategyFedAvgM && o.Strategy != StrategyFedAdam && o.Beta1 != 0:
		return fmt.Errorf("momentum is a parameter of fedavgm and fedadam: name one of them as the strategy")
	case o.Strategy != StrategyFedAdam && (o.Beta2 != 0 || o.Tau != 0):
		return fmt.Errorf("beta2 and tau are parameters of fedadam: name it as the strategy")
	}
	return nil
}

// Identity reports whether the step publishes the aggregate unchanged (fedavg with η = 1), so
// the coordinator can skip it and keep no state.
func (o ServerOptimizer) Identity() bool {
	o = o.WithDefaults()
	return o.Strategy == StrategyFedAvg && o.LR == 1
}

// OptState is a lineage's server optimiser state after a version: the first moment M (fedavgm's
// momentum, fedadam's m) and fedadam's second moment V, one coordinate per model element in the
// model's tensor order.
type OptState struct {
	Strategy string
	M, V     []float64
}

// Step applies o to the aggregate of a round on base, with the state left by base's round (nil:
// none yet), and returns the next version (the base's layout, no metadata) and the state after
// it. aggregate must have base's tensors.
func (o ServerOptimizer) Step(base, aggregate *File, st *OptState) (*File, *OptState, error) {
	o = o.WithDefaults()
	if err := o.Check(); err != nil {
		return nil, nil, err
	}
	if err := checkTensorSet(base, aggregate); err != nil {
		return nil, nil, err
	}
	n := 0
	for i := range base.Tensors {
		n += base.Tensors[i].Elements()
	}
	next := &OptState{Strategy: o.Strategy}
	fresh := st == nil || st.Strategy != o.Strategy || len(st.M) != n
	switch o.Strategy {
	case StrategyFedAvgM:
		next.M = make([]float64, n)
		if !fresh {
			copy(next.M, st.M)
		}
	case StrategyFedAdam:
		next.M, next.V = make([]float64, n), make([]float64, n)
		if !fresh && len(st.V) == n {
			copy(next.M, st.M)
			copy(next.V, st.V)
		}
	}
	out := &File{Metadata: map[string]string{}}
	k := 0
	for i := range base.Tensors {
		b, a := &base.Tensors[i], &aggregate.Tensors[i]
		t := NewTensor(b.Name, b.DType, b.Shape...)
		for j := range b.Elements() {
			w := b.At(j)
			d := a.At(j) - w
			var step float64
			switch o.Strategy {
			case StrategyFedAvgM:
				next.M[k] = o.Beta1*next.M[k] + d
				step = next.M[k]
			case StrategyFedAdam:
				next.M[k] = o.Beta1*next.M[k] + (1-o.Beta1)*d
				next.V[k] = o.Beta2*next.V[k] + (1-o.Beta2)*d*d
				step = next.M[k] / (math.Sqrt(next.V[k]) + o.Tau)
			default:
				step = d
			}
			v := w + o.LR*step
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, nil, fmt.Errorf("the %s step made tensor %s non-finite", o.Strategy, b.Name)
			}
			t.Set(j, v)
			k++
		}
		out.Tensors = append(out.Tensors, t)
	}
	if o.Strategy == StrategyFedAvg {
		next = nil // plain averaging keeps no state
	}
	return out, next, nil
}

// StateFile is st as a safetensors file laid out like model: "m/<tensor>" and (fedadam)
// "v/<tensor>" in float32, and the strategy in the metadata. It is the optimiser's, never a model
// to hand out.
func (st *OptState) StateFile(model *File) *File {
	f := &File{Metadata: map[string]string{optStateStrategyField: st.Strategy}}
	add := func(prefix string, vals []float64) {
		k := 0
		for i := range model.Tensors {
			b := &model.Tensors[i]
			t := NewTensor(prefix+b.Name, F32, b.Shape...)
			for j := range t.Elements() {
				t.Set(j, vals[k])
				k++
			}
			f.Tensors = append(f.Tensors, t)
		}
	}
	add(optStateMomentumName, st.M)
	if st.V != nil {
		add(optStateVarianceName, st.V)
	}
	return f // "m/…" then "v/…", each in the model's (sorted) order: sorted by name
}

// StateOf reads a state written by StateFile for model (whose layout it must have).
func StateOf(f, model *File) (*OptState, error) {
	st := &OptState{Strategy: f.Metadata[optStateStrategyField]}
	read := func(prefix string) ([]float64, error) {
		var vals []float64
		for i := range model.Tensors {
			b := &model.Tensors[i]
			t := f.Tensor(prefix + b.Name)
			if t == nil || t.Elements() != b.Elements() {
				return nil, fmt.Errorf("the optimiser state has no %s%s of %d elements", prefix, b.Name, b.Elements())
			}
			for j := range t.Elements() {
				vals = append(vals, t.At(j))
			}
		}
		return vals, nil
	}
	var err error
	if st.M, err = read(optStateMomentumName); err != nil {
		return nil, err
	}
	if st.Strategy == StrategyFedAdam {
		if st.V, err = read(optStateVarianceName); err != nil {
			return nil, err
		}
	}
	return st, nil
}
