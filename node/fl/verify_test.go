package fl

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

func TestReasonNamesTheRule(t *testing.T) {
	for _, r := range []error{ErrTensorSet, ErrShape, ErrDType, ErrNonFinite, ErrNorm, ErrSamples} {
		if got := Reason(fmt.Errorf("%w: detail", r)); got != r.Error() {
			t.Errorf("Reason(%v) = %q", r, got)
		}
	}
	if got := Reason(fmt.Errorf("%w: x", ErrFormat)); got != "format" {
		t.Errorf("Reason(ErrFormat) = %q", got)
	}
	if got := Reason(errors.New("other")); got != "invalid" {
		t.Errorf("Reason(other) = %q", got)
	}
}

func TestClipScalesTheDelta(t *testing.T) {
	base := &File{Tensors: []Tensor{NewTensor("w", F32, 2)}}
	base.Tensors[0].Set(0, 1)
	u := &File{Tensors: []Tensor{NewTensor("w", F32, 2)}}
	u.Tensors[0].Set(0, 4) // delta (3, 4): norm 5
	u.Tensors[0].Set(1, 4)
	norm, err := Check(base, u, 1, 1)
	if !errors.Is(err, ErrNorm) || norm != 5 {
		t.Fatalf("Check = %v, %v; want norm 5 beyond the bound", norm, err)
	}
	c := Clip(base, u, norm, 1)
	if got, err := Check(base, c, 1, 1); err != nil || math.Abs(got-1) > 1e-5 {
		t.Fatalf("clipped norm = %v, %v; want 1", got, err)
	}
	if v0, v1 := c.Tensors[0].At(0), c.Tensors[0].At(1); math.Abs(v0-1.6) > 1e-5 || math.Abs(v1-0.8) > 1e-5 {
		t.Errorf("clipped values = %v, %v; want 1.6, 0.8 (base + delta/5)", v0, v1)
	}
	if same := Clip(base, u, norm, 10); same.Tensors[0].At(0) != 4 {
		t.Errorf("Clip within the bound changed the update")
	}
}

func TestShardsSkew(t *testing.T) {
	d := &Dataset{Classes: 4}
	for i := range 400 {
		d.X, d.Y = append(d.X, []float64{float64(i)}), append(d.Y, i%4)
	}
	classes := func(s *Dataset) int {
		seen := map[int]bool{}
		for _, y := range s.Y {
			seen[y] = true
		}
		return len(seen)
	}
	full := d.Shards(4, 1, 1)
	mixed := d.Shards(4, 1, 0.5)
	total := 0
	for i := range full {
		if classes(full[i]) != 1 {
			t.Errorf("fully skewed shard %d has %d classes, want 1", i, classes(full[i]))
		}
		if classes(mixed[i]) != 4 {
			t.Errorf("half-skewed shard %d has %d classes, want all 4", i, classes(mixed[i]))
		}
		total += len(mixed[i].X)
	}
	if total != 400 {
		t.Errorf("shards hold %d rows, want all 400", total)
	}
}
