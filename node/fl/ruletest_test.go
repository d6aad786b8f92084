package fl

import (
	"slices"
	"testing"
)

// This file is a whole aggregation rule, registered only in this package's tests: adding a rule
// is adding one file like it (see TestOneFileAddsARule).

// ruleMax is the test-only rule: the largest value of each coordinate.
const ruleMax = "test_max"

func init() {
	Register(ruleMax, func(base *File, _ Options) (Aggregator, error) {
		return &coordinatewise{base: base, reduce: func(col []float64) float64 { return col[len(col)-1] }}, nil
	})
}

// TestOneFileAddsARule: a rule registered in one file is listed, validated and built with no
// other list of names to edit.
func TestOneFileAddsARule(t *testing.T) {
	if err := ValidRule(ruleMax); err != nil {
		t.Errorf("ValidRule(%q) = %v, want nil", ruleMax, err)
	}
	if names := Rules(); !slices.Contains(names, ruleMax) || !slices.IsSorted(names) {
		t.Errorf("Rules() = %v, want it sorted and holding %q", names, ruleMax)
	}
	base := file(map[string][]float64{"w": {0, 0}}, F64)
	u := []*File{file(map[string][]float64{"w": {1, 9}}, F64), file(map[string][]float64{"w": {5, 2}}, F64)}
	got := aggregate(t, ruleMax, Options{}, base, u, []uint64{1, 1})
	if w := got.Tensor("w"); w.At(0) != 5 || w.At(1) != 9 {
		t.Errorf("%s = %v, %v; want 5, 9", ruleMax, w.At(0), w.At(1))
	}
}
