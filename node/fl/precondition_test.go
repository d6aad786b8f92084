package fl

import (
	"math"
	"strings"
	"testing"
)

// The change of coordinates is exact: a layer rewritten for standardised features gives the
// same pre-activations on the standardised rows, and mapping it back restores it.
func TestPreconditionerIsAChangeOfCoordinates(t *testing.T) {
	X := [][]float64{{0, 1, 5}, {2, 1, 7}, {4, 1, 6}, {1, 1, 9}} // feature 1 is constant
	pc := newPreconditioner(X)
	W := []float64{0.3, -1, 2, 0.5, 4, -0.25}
	B := []float64{1, -2}
	w, b := append([]float64(nil), W...), append([]float64(nil), B...)
	pc.toTrained(w, b)
	z := make([]float64, 3)
	for _, x := range X {
		pc.standardize(x, z)
		for r := range B {
			raw, std := B[r], b[r]
			for f := range x {
				raw += W[r*3+f] * x[f]
				std += w[r*3+f] * z[f]
			}
			if math.Abs(raw-std) > 1e-12 {
				t.Errorf("row %v, unit %d: %g on raw features, %g on standardised ones", x, r, raw, std)
			}
		}
	}
	pc.toModel(w, b)
	for i := range W {
		if math.Abs(w[i]-W[i]) > 1e-12 {
			t.Errorf("weight %d = %g after the round trip, want %g", i, w[i], W[i])
		}
	}
	for i := range B {
		if math.Abs(b[i]-B[i]) > 1e-12 {
			t.Errorf("bias %d = %g after the round trip, want %g", i, b[i], B[i])
		}
	}
	if s := newPreconditioner([][]float64{{3, 3}, {3, 3}}).scale; s[0] != 1 || s[1] != 1 {
		t.Errorf("scale of constant data = %v, want 1s", s)
	}
}

// The built-in trainers do not depend on the features' units: data in 0..16 trains the same
// classifier as the same data in 0..1 (plain SGD would take 16× larger steps on it), which is
// what the preconditioner buys; it fails if the trainers step on the raw features.
func TestTrainersIgnoreFeatureUnits(t *testing.T) {
	unit, err := LoadCSV(digits, 16)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := LoadCSV(digits, 1)
	if err != nil {
		t.Fatal(err)
	}
	train, test := unit.Split(4, 0.2)
	trainRaw, testRaw := raw.Split(4, 0.2)
	// The MLP starts from random first-layer weights: the raw-feature one reads 0..16 as the
	// other reads 0..1 (÷16 is exact in floating point, so both runs are the same arithmetic).
	mlpRaw := NewMLP(64, 16, 10, 1)
	for i := range mlpRaw.Tensor("w1").Elements() {
		mlpRaw.Tensor("w1").Set(i, mlpRaw.Tensor("w1").At(i)/16)
	}
	for _, tc := range []struct {
		name       string
		model, raw *File
		lr         float64
	}{{"logistic regression", NewLogReg(64, 10), NewLogReg(64, 10), 0.2}, {"MLP", NewMLP(64, 16, 10, 1), mlpRaw, 0.05}} {
		m, err := TrainProx(tc.model, train, 3, 32, tc.lr, 9, 0)
		if err != nil {
			t.Fatal(err)
		}
		mr, err := TrainProx(tc.raw, trainRaw, 3, 32, tc.lr, 9, 0)
		if err != nil {
			t.Fatal(err)
		}
		a, ar := Accuracy(m, test), Accuracy(mr, testRaw)
		t.Logf("%s: %.4f on 0..1 features, %.4f on 0..16", tc.name, a, ar)
		if math.Abs(a-ar) > 1e-9 || a < 0.85 {
			t.Errorf("%s: accuracy %.4f on 0..1 features and %.4f on the same rows in 0..16; want the same, at least 0.85", tc.name, a, ar)
		}
	}
}

// A single row, and rows whose features are all constant, train without dividing by zero.
func TestTrainerOnDegenerateData(t *testing.T) {
	for _, d := range []*Dataset{
		{X: [][]float64{{0.5, 0.25}}, Y: []int{1}, Classes: 2},
		{X: [][]float64{{1, 1}, {1, 1}, {1, 1}}, Y: []int{0, 1, 1}, Classes: 2},
	} {
		m, err := TrainLogReg(NewLogReg(2, 2), d, 3, 2, 0.5, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, tn := range m.Tensors {
			for i := range tn.Elements() {
				if v := tn.At(i); math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%v: %s[%d] = %g", d.X, tn.Name, i, v)
				}
			}
		}
	}
	if _, err := TrainLogReg(NewLogReg(2, 2), &Dataset{Classes: 2}, 1, 1, 0.5, 1); err == nil {
		t.Errorf("training on no rows: nil error")
	}
}

// A NaN or infinite feature is refused where it is read, with its line, rather than turning the
// trainer's standardisation (and so the whole update) into NaN.
func TestReadCSVRefusesNonFiniteFeatures(t *testing.T) {
	for _, v := range []string{"NaN", "Inf", "-inf"} {
		_, err := ReadCSV(strings.NewReader("1,2,0\n3,"+v+",1\n"), "data.csv", 1)
		if err == nil || !strings.Contains(err.Error(), "data.csv:2: feature 1") {
			t.Errorf("a %s feature: error %v, want one naming data.csv:2, feature 1", v, err)
		}
	}
}
