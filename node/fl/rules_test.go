package fl

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// aggregate runs updates through the rule name, by the Aggregator interface.
func aggregate(t *testing.T, name string, o Options, base *File, updates []*File, samples []uint64) *File {
	t.Helper()
	a, err := NewAggregator(name, base, o)
	if err != nil {
		t.Fatalf("NewAggregator(%q) = %v", name, err)
	}
	for i, u := range updates {
		if err := a.Add(u, samples[i]); err != nil {
			t.Fatalf("%s: Add(update %d) = %v", name, i, err)
		}
	}
	got, err := a.Result()
	if err != nil {
		t.Fatalf("%s: Result() = %v", name, err)
	}
	return got
}

func TestAggregationRules(t *testing.T) {
	base := file(map[string][]float64{"w": {0, 0}}, F64)
	u := []*File{
		file(map[string][]float64{"w": {1, 10}}, F64),
		file(map[string][]float64{"w": {2, 20}}, F64),
		file(map[string][]float64{"w": {4, 40}}, F64),
		file(map[string][]float64{"w": {8, 80}}, F64),
	}
	samples := []uint64{1, 1, 2, 4}
	tests := []struct {
		rule       string
		o          Options
		want0, w1  float64
		wantFolder bool
	}{
		{RuleFedAvg, Options{}, 43.0 / 8, 430.0 / 8, true}, // (1·1 + 2·1 + 4·2 + 8·4) / 8 = 43/8
		{RuleMedian, Options{}, 3, 30, false},
		{RuleTrimmedMean, Options{Trim: 0.25}, 3, 30, false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			got := aggregate(t, tt.rule, tt.o, base, u, samples)
			if w := got.Tensor("w"); w.At(0) != tt.want0 || w.At(1) != tt.w1 {
				t.Errorf("%s = %v, %v; want %v, %v", tt.rule, w.At(0), w.At(1), tt.want0, tt.w1)
			}
			a, _ := NewAggregator(tt.rule, base, tt.o)
			if _, folder := a.(Folder); folder != tt.wantFolder {
				t.Errorf("%s is a Folder = %v, want %v", tt.rule, folder, tt.wantFolder)
			}
			if _, err := a.Result(); !errors.Is(err, ErrNoUpdates) {
				t.Errorf("%s: Result() of nothing = %v, want ErrNoUpdates", tt.rule, err)
			}
			other := file(map[string][]float64{"v": {1, 2}}, F64)
			if err := a.Add(other, 1); !errors.Is(err, ErrTensorSet) {
				t.Errorf("%s: Add(foreign tensors) = %v, want ErrTensorSet", tt.rule, err)
			}
		})
	}
	for _, trim := range []float64{-0.1, 0.5} {
		if _, err := NewAggregator(RuleTrimmedMean, base, Options{Trim: trim}); err == nil {
			t.Errorf("NewAggregator(trimmed_mean, trim %v) = nil error, want one", trim)
		}
	}
}

// TestMaxWeightOption: the registry hands Options.MaxWeight to fedavg, so an update claiming
// more samples than the round's ceiling weighs the ceiling.
func TestMaxWeightOption(t *testing.T) {
	base := file(map[string][]float64{"w": {0}}, F64)
	one, zero := file(map[string][]float64{"w": {1}}, F64), file(map[string][]float64{"w": {0}}, F64)
	got := aggregate(t, RuleFedAvg, Options{MaxWeight: 10}, base, []*File{one, zero}, []uint64{10, 1 << 40})
	if v := got.Tensor("w").At(0); v != 0.5 {
		t.Errorf("fedavg(MaxWeight 10) = %v, want 0.5", v)
	}
}

func TestPoisonedUpdate(t *testing.T) {
	base := file(map[string][]float64{"w": {0}}, F32)
	honest := []float64{1, 1.1, 0.9, 1.05}
	var updates []*File
	for _, v := range honest {
		updates = append(updates, file(map[string][]float64{"w": {v}}, F32))
	}
	updates = append(updates, file(map[string][]float64{"w": {1000}}, F32)) // ×1000
	ones := []uint64{1, 1, 1, 1, 1}
	if v := aggregate(t, RuleFedAvg, Options{}, base, updates, ones).Tensor("w").At(0); v < 100 {
		t.Errorf("FedAvg with a ×1000 update = %v, want it dragged far off (> 100)", v)
	}
	for _, rule := range []string{RuleMedian, RuleTrimmedMean} {
		if v := aggregate(t, rule, Options{Trim: 0.2}, base, updates, ones).Tensor("w").At(0); v < 0.9 || v > 1.1 {
			t.Errorf("%s with a ×1000 update = %v, want it within the honest range", rule, v)
		}
	}
}

// TestRegistry: the names are sorted, and an unknown rule is an ErrUnknownRule that names the
// known ones, from ValidRule and NewAggregator alike.
func TestRegistry(t *testing.T) {
	names := Rules()
	if !slices.IsSorted(names) {
		t.Errorf("Rules() = %v, want sorted", names)
	}
	for _, want := range []string{RuleFedAvg, RuleMedian, RuleTrimmedMean} {
		if !slices.Contains(names, want) {
			t.Errorf("Rules() = %v, want it to hold %q", names, want)
		}
		if err := ValidRule(want); err != nil {
			t.Errorf("ValidRule(%q) = %v, want nil", want, err)
		}
	}
	base := file(map[string][]float64{"w": {0}}, F64)
	_, newErr := NewAggregator("vote", base, Options{})
	for name, err := range map[string]error{"ValidRule": ValidRule("vote"), "NewAggregator": newErr} {
		if !errors.Is(err, ErrUnknownRule) {
			t.Errorf("%s(vote) = %v, want ErrUnknownRule", name, err)
			continue
		}
		for _, known := range names {
			if !strings.Contains(err.Error(), known) {
				t.Errorf("%s(vote) = %q, want it to name %q", name, err, known)
			}
		}
	}
	if err := ValidRule(""); !errors.Is(err, ErrUnknownRule) {
		t.Errorf("ValidRule(\"\") = %v, want ErrUnknownRule", err)
	}
	if got, want := RuleList(), strings.Join(names[:len(names)-1], ", ")+" or "+names[len(names)-1]; got != want {
		t.Errorf("RuleList() = %q, want %q", got, want)
	}
	for _, bad := range []string{"", RuleFedAvg} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", bad)
				}
			}()
			Register(bad, func(*File, Options) (Aggregator, error) { return nil, nil })
		}()
	}
}
