package fl

import (
	"math"
	"strings"
	"testing"
)

// vec is a one-tensor float32 model holding vals.
func vec(vals ...float64) *File {
	t := NewTensor("w", F32, len(vals))
	for i, v := range vals {
		t.Set(i, v)
	}
	return &File{Tensors: []Tensor{t}, Metadata: map[string]string{}}
}

func values(f *File) []float64 {
	out := make([]float64, f.Tensors[0].Elements())
	for i := range out {
		out[i] = f.Tensors[0].At(i)
	}
	return out
}

func near(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-6 {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
}

func TestFedAvgServerLRScalesTheDelta(t *testing.T) {
	base, agg := vec(1, 2), vec(2, 0) // Δ = (1, −2)
	next, st, err := ServerOptimizer{Strategy: StrategyFedAvg, LR: 0.5}.Step(base, agg, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "fedavg η=0.5", values(next), []float64{1.5, 1})
	if st != nil {
		t.Errorf("fedavg kept a state %+v", st)
	}
	if !(ServerOptimizer{}).Identity() || (ServerOptimizer{LR: 0.5}).Identity() || (ServerOptimizer{Strategy: StrategyFedAvgM}).Identity() {
		t.Error("Identity: only fedavg with η = 1 publishes the aggregate unchanged")
	}
}

// TestFedAvgMCarriesMomentum checks two rounds by hand: β = 0.5, η = 2.
func TestFedAvgMCarriesMomentum(t *testing.T) {
	o := ServerOptimizer{Strategy: StrategyFedAvgM, LR: 2, Beta1: 0.5}
	base := vec(0, 1)
	next, st, err := o.Step(base, vec(1, 0), nil) // Δ = (1, −1); m = (1, −1); new = (2, −1)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "round 1", values(next), []float64{2, -1})
	near(t, "round 1 momentum", st.M, []float64{1, -1})
	// Round 2 on (2, −1): aggregate (2.5, −1) → Δ = (0.5, 0); m = 0.5·(1, −1) + (0.5, 0) = (1, −0.5);
	// new = (2, −1) + 2·(1, −0.5) = (4, −2).
	next2, st2, err := o.Step(next, vec(2.5, -1), st)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "round 2", values(next2), []float64{4, -2})
	near(t, "round 2 momentum", st2.M, []float64{1, -0.5})
	// Without the carried state round 2 is plain η·Δ: the state matters.
	fresh, _, _ := o.Step(next, vec(2.5, -1), nil)
	near(t, "round 2 from zero state", values(fresh), []float64{3, -1})
}

// TestFedAdamStep checks two rounds by hand: β1 = 0.5, β2 = 0.75, τ = 0.5, η = 1.
func TestFedAdamStep(t *testing.T) {
	o := ServerOptimizer{Strategy: StrategyFedAdam, LR: 1, Beta1: 0.5, Beta2: 0.75, Tau: 0.5}
	// Δ = (2, 0): m = (1, 0), v = (1, 0), step = m/(√v+τ) = (1/1.5, 0).
	next, st, err := o.Step(vec(0, 0), vec(2, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "round 1", values(next), []float64{2.0 / 3, 0})
	near(t, "round 1 m", st.M, []float64{1, 0})
	near(t, "round 1 v", st.V, []float64{1, 0})
	// Round 2: Δ = (0, 4) from (2/3, 0): m = (0.5, 2), v = (0.75, 4), step = (0.5/(√0.75+0.5), 2/2.5).
	next2, st2, err := o.Step(next, vec(2.0/3, 4), st)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "round 2 m", st2.M, []float64{0.5, 2})
	near(t, "round 2 v", st2.V, []float64{0.75, 4})
	near(t, "round 2", values(next2), []float64{2.0/3 + 0.5/(math.Sqrt(0.75)+0.5), 0.8})
}

func TestOptStateFileRoundTrip(t *testing.T) {
	model := &File{Tensors: []Tensor{NewTensor("bias", F32, 2), NewTensor("weight", F32, 2, 2)}, Metadata: map[string]string{}}
	st := &OptState{Strategy: StrategyFedAdam, M: []float64{1, 2, 3, 4, 5, 6}, V: []float64{0.5, 0.25, 1, 2, 3, 4}}
	raw, err := st.StateFile(model).Encode()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := StateOf(f, model)
	if err != nil {
		t.Fatal(err)
	}
	if got.Strategy != StrategyFedAdam {
		t.Errorf("strategy = %q", got.Strategy)
	}
	near(t, "m", got.M, st.M)
	near(t, "v", got.V, st.V)
	if _, err := StateOf(f, vec(1, 2, 3)); err == nil {
		t.Error("a state read for a model of another layout was accepted")
	}
}

func TestServerOptimizerCheckRefusals(t *testing.T) {
	bad := map[string]ServerOptimizer{
		"strategy":            {Strategy: "sgd"},
		"server_lr":           {Strategy: StrategyFedAvgM, LR: -1},
		"server_lr NaN":       {LR: math.NaN()},
		"momentum":            {Strategy: StrategyFedAvgM, Beta1: 1},
		"beta2":               {Strategy: StrategyFedAdam, Beta2: 1.5},
		"tau":                 {Strategy: StrategyFedAdam, Tau: -0.1},
		"momentum of fedavg":  {Strategy: StrategyFedAvg, Beta1: 0.9},
		"beta2 of fedavgm":    {Strategy: StrategyFedAvgM, Beta2: 0.9},
		"server_lr too large": {LR: 1000},
	}
	for name, o := range bad {
		err := o.Check()
		if err == nil {
			t.Errorf("%s: %+v accepted", name, o)
			continue
		}
		if strings.Count(err.Error(), ".") > 1 || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %q is not one sentence", name, err)
		}
	}
	for _, o := range []ServerOptimizer{{}, {Strategy: StrategyFedAvgM}, {Strategy: StrategyFedAdam, LR: 0.1, Beta1: 0.9, Beta2: 0.99, Tau: 0.01}} {
		if err := o.Check(); err != nil {
			t.Errorf("%+v refused: %v", o, err)
		}
	}
}

// TestProxTermPullsTowardsTheBase fails if μ is ignored: with a huge μ the trained weights stay
// by the base, and with μ = 0 they are Train's, bit for bit.
func TestProxTermPullsTowardsTheBase(t *testing.T) {
	d, err := LoadCSV(digits, 16)
	if err != nil {
		t.Fatal(err)
	}
	d.X, d.Y = d.X[:300], d.Y[:300]
	base := NewLogReg(64, 10)
	plain, err := Train(base, d, 2, 32, 0.5, 1)
	if err != nil {
		t.Fatal(err)
	}
	zero, err := TrainProx(base, d, 2, 32, 0.5, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(plain.Tensor("weight").Data) != string(zero.Tensor("weight").Data) {
		t.Error("prox_mu 0 changed the trained weights")
	}
	prox, err := TrainProx(base, d, 2, 32, 0.5, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	dist := func(f *File) float64 {
		var ss float64
		for i := range f.Tensor("weight").Elements() {
			ss += f.Tensor("weight").At(i) * f.Tensor("weight").At(i) // the base is zero
		}
		return math.Sqrt(ss)
	}
	if dp, d0 := dist(prox), dist(plain); !(dp < 0.8*d0) {
		t.Errorf("‖w − w_base‖ with μ = 1 is %.4f, without %.4f: the proximal term does not pull towards the base", dp, d0)
	}
}

// TestProxGradient checks one SGD step by hand: a single row, a model off its base, lr 1.
func TestProxGradient(t *testing.T) {
	d := &Dataset{X: [][]float64{{0}}, Y: []int{0}, Classes: 2} // a zero feature: only the bias's data gradient
	base := NewLogReg(1, 2)
	base.Tensor("weight").Set(0, 1) // w_base = (1, 0), b_base = (0, 0)
	// Two steps (two epochs of one row), lr 1, μ 0.5. The first starts at the base, where the
	// proximal gradient is zero; the second pulls the bias back by lr·μ·(b − b_base). The weight
	// has no data gradient (x = 0) and never leaves its base.
	got, err := TrainProx(base, d, 2, 1, 1, 1, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	// Step 1: p = softmax(0, 0) = (0.5, 0.5); b = (0.5, −0.5).
	// Step 2: z = b: p0 = 1/(1+e^{-1}); data grad (p0 − 1, 1 − p0); prox grad 0.5·b.
	p0 := 1 / (1 + math.Exp(-1))
	b0 := 0.5 - (p0 - 1) - 0.5*0.5
	b1 := -0.5 - (1 - p0) - 0.5*(-0.5)
	near(t, "bias after two steps", []float64{got.Tensor("bias").At(0), got.Tensor("bias").At(1)}, []float64{b0, b1})
	near(t, "weight (x = 0: no gradient, at its base)", []float64{got.Tensor("weight").At(0), got.Tensor("weight").At(1)}, []float64{1, 0})
}
