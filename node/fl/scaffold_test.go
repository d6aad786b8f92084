package fl

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// control is a control variate shaped as a 1-feature, 2-class logistic regression.
func control(bias0, bias1, w0, w1 float64) *File {
	c := ZeroControl(NewLogReg(1, 2))
	for i, v := range []float64{bias0, bias1} {
		c.Tensor("bias").Set(i, v)
	}
	for i, v := range []float64{w0, w1} {
		c.Tensor("weight").Set(i, v)
	}
	return c
}

// One corrected SGD step computed by hand: from the zero model, the row x = 2 of class 0 has
// p = (½, ½), so the gradient is (−½, ½) for the bias and (−1, 1) for the weight; the step at
// rate 0.1 descends gradient + correction.
func TestScaffoldCorrectedStepByHand(t *testing.T) {
	d := &Dataset{X: [][]float64{{2}}, Y: []int{0}, Classes: 2}
	corr := control(0.3, -0.2, 1, 0.5)
	got, err := TrainScaffoldContext(context.Background(), NewLogReg(1, 2), d, 1, 1, 0.1, 1, 0, corr)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float64{
		"bias":   {-0.1 * (-0.5 + 0.3), -0.1 * (0.5 - 0.2)},
		"weight": {-0.1 * (-1 + 1), -0.1 * (1 + 0.5)},
	}
	for name, w := range want {
		for i, v := range w {
			if g := got.Tensor(name).At(i); math.Abs(g-v) > 1e-6 {
				t.Errorf("%s[%d] = %g, want %g", name, i, g, v)
			}
		}
	}
	plain, err := TrainScaffoldContext(context.Background(), NewLogReg(1, 2), d, 1, 1, 0.1, 1, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := plain.Tensor("weight").At(1); math.Abs(g+0.1) > 1e-6 {
		t.Errorf("without a correction weight[1] = %g, want -0.1", g)
	}
	if _, err := TrainScaffoldContext(context.Background(), NewLogReg(1, 2), d, 1, 1, 0.1, 1, 0, ZeroControl(NewLogReg(2, 2))); err == nil {
		t.Error("a correction of another shape was accepted")
	}
	if _, err := TrainScaffoldContext(context.Background(), NewMLP(1, 3, 2, 1), d, 1, 1, 0.1, 1, 0, corr); err == nil || !strings.Contains(err.Error(), "MLP") {
		t.Errorf("an MLP with a SCAFFOLD correction: err %v, want the MLP refusal", err)
	}
}

// The control-variate arithmetic, by hand: c_i⁺ = c_i − c + (x − y)/(K·η), the server's c
// derived from two versions, (parent − base)/(η_g·K·η), and the correction c − c_i.
func TestScaffoldControlVariatesByHand(t *testing.T) {
	x, y := control(1, 2, 3, 4), control(0, 1, 1, 5)
	ci, c := control(0.5, 0, 0, 0), control(0.25, 0, 0, 1)
	next, err := ScaffoldUpdate(ci, c, x, y, 4, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	// (x − y)/(4·0.5) = (0.5, 0.5, 1, −0.5)
	check := func(what string, f *File, want ...float64) {
		t.Helper()
		got := []float64{f.Tensor("bias").At(0), f.Tensor("bias").At(1), f.Tensor("weight").At(0), f.Tensor("weight").At(1)}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-12 {
				t.Errorf("%s = %v, want %v", what, got, want)
				return
			}
		}
	}
	check("c_i⁺", next, 0.5-0.25+0.5, 0.5, 1, -1-0.5)
	derived, err := ScaffoldServerControl(x, y, 2, 4, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	check("derived c", derived, 0.25, 0.25, 0.5, -0.25)
	corr, err := ScaffoldCorrection(c, ci)
	if err != nil {
		t.Fatal(err)
	}
	check("c − c_i", corr, -0.25, 0, 0, 1)
	if _, err := ScaffoldServerControl(x, ZeroControl(NewLogReg(3, 2)), 1, 4, 0.5); err == nil {
		t.Error("versions of different shapes gave a control variate")
	}
	if _, err := ScaffoldUpdate(ci, c, x, y, 0, 0.5); err == nil {
		t.Error("zero local steps gave a control variate")
	}
	if got := LocalSteps(360, 5, 32); got != 60 {
		t.Errorf("LocalSteps(360, 5, 32) = %d, want 60", got)
	}
}

// skewed is two fully label-sorted shards of overlapping 1-D classes (x ~ N(∓1, 1)), the union
// and its cross-entropy.
func skewed() ([]*Dataset, *Dataset) {
	rng := rand.New(rand.NewPCG(5, 6))
	all := &Dataset{Classes: 2}
	shards := []*Dataset{{Classes: 2}, {Classes: 2}}
	for i := range 200 {
		y := i % 2
		x := []float64{rng.NormFloat64() + float64(2*y-1)}
		shards[y].X, shards[y].Y = append(shards[y].X, x), append(shards[y].Y, y)
		all.X, all.Y = append(all.X, x), append(all.Y, y)
	}
	return shards, all
}

func crossEntropy(m *File, d *Dataset) float64 {
	W := []float64{m.Tensor("weight").At(0), m.Tensor("weight").At(1)}
	B := []float64{m.Tensor("bias").At(0), m.Tensor("bias").At(1)}
	p := make([]float64, 2)
	var s float64
	for i, x := range d.X {
		softmax(W, B, x, p)
		s -= math.Log(p[d.Y[i]])
	}
	return s / float64(len(d.X))
}

// On fully label-sorted shards FedAvg drifts (each trainer pulls the bias towards its only
// class); SCAFFOLD corrects it and ends much nearer the union's optimum. With full participation
// and equal shards, client-side SCAFFOLD (c derived from the two latest versions) runs exactly
// as true SCAFFOLD (the server's c).
func TestSimulationScaffoldCorrectsDrift(t *testing.T) {
	shards, all := skewed()
	sim := Simulation{Shards: shards, Test: all, Rounds: 15, Epochs: 5, Batch: 10, LR: 0.5, Seed: 3,
		Optimizer: ServerOptimizer{Strategy: StrategyFedAvg, LR: 1}}
	run := func(mode string) *File {
		t.Helper()
		s := sim
		s.Scaffold = mode
		res, err := s.Run(NewLogReg(1, 2))
		if err != nil {
			t.Fatal(err)
		}
		return res.Final
	}
	central, err := TrainLogReg(NewLogReg(1, 2), all, 200, 10, 0.1, 1)
	if err != nil {
		t.Fatal(err)
	}
	opt := crossEntropy(central, all)
	plain, server, client := run(""), run(SimScaffoldServer), run(SimScaffoldClient)
	lp, ls := crossEntropy(plain, all)-opt, crossEntropy(server, all)-opt
	t.Logf("excess loss: SCAFFOLD %.5f, FedAvg %.5f", ls, lp)
	if ls > lp/3 {
		t.Errorf("excess loss: SCAFFOLD %.4f, FedAvg %.4f: SCAFFOLD should remove most of the drift", ls, lp)
	}
	for i := range server.Tensors {
		for j := range server.Tensors[i].Elements() {
			if a, b := server.Tensors[i].At(j), client.Tensors[i].At(j); math.Abs(a-b) > 1e-5 {
				t.Fatalf("%s[%d]: true SCAFFOLD %g, client-side %g: with full participation they should agree", server.Tensors[i].Name, j, a, b)
			}
		}
	}
	if _, err := (Simulation{Shards: shards, Test: all, Rounds: 1, Epochs: 1, Batch: 10, LR: 0.5, Scaffold: "both"}).Run(NewLogReg(1, 2)); err == nil {
		t.Error("an unknown scaffold mode ran")
	}
}

// Client-side SCAFFOLD: a trainer that did not train on the base's parent (it was absent) has
// no c: its correction is −c_i; one that did derives c from the two versions. True SCAFFOLD's
// c is reset by a failover.
func TestSimScaffoldControlWithoutParent(t *testing.T) {
	shards, all := skewed()
	s := Simulation{Shards: shards, Test: all, Epochs: 1, Batch: 10, LR: 0.5, Scaffold: SimScaffoldClient}
	sc := newSimScaffold(s, NewLogReg(1, 2))
	x0 := NewLogReg(1, 2)
	for i := range shards {
		if _, err := sc.correction(i, x0, len(shards[i].X), 0.5); err != nil {
			t.Fatal(err)
		}
	}
	y, err := Train(x0, shards[0], 1, 10, 0.5, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.trained(0, x0, y, len(shards[0].X), 0.5); err != nil { // trainer 1 absent
		t.Fatal(err)
	}
	if err := sc.published(x0, y); err != nil {
		t.Fatal(err)
	}
	held, err := sc.correction(0, y, len(shards[0].X), 0.5)
	if err != nil {
		t.Fatal(err)
	}
	wantC, _ := ScaffoldServerControl(x0, y, 1, LocalSteps(len(shards[0].X), 1, 10), 0.5)
	want, _ := ScaffoldCorrection(wantC, sc.ci[0])
	absent, err := sc.correction(1, y, len(shards[1].X), 0.5)
	if err != nil {
		t.Fatal(err)
	}
	for i := range held.Tensors {
		for j := range held.Tensors[i].Elements() {
			if g, w := held.Tensors[i].At(j), want.Tensors[i].At(j); math.Abs(g-w) > 1e-12 {
				t.Errorf("trainer holding the parent: correction %g, want %g", g, w)
			}
			if g := absent.Tensors[i].At(j); g != 0 {
				t.Errorf("absent trainer (c = 0, c_i = 0): correction %g, want 0", g)
			}
		}
	}
	if wantC.Tensors[1].At(0) == 0 {
		t.Fatal("the derived c is zero: the test proves nothing")
	}

	s.Scaffold = SimScaffoldServer
	sv := newSimScaffold(s, x0)
	sv.c = control(1, 1, 1, 1)
	sv.lost()
	if sv.c.Tensor("weight").At(0) != 0 {
		t.Error("a failover kept the server's control variate")
	}
}
