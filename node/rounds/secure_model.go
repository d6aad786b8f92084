package rounds

import (
	"fmt"
	"math"

	"github.com/califusion/califusion/node/fl"
)

// A secure round's vector is the model's tensors flattened in tensor-name order (fl.File keeps
// them sorted), every element as one coordinate: the coordinator and every trainer derive the
// same layout from the base model.

// flatDim is the number of coordinates of f's vector.
func flatDim(f *fl.File) int {
	n := 0
	for i := range f.Tensors {
		n += f.Tensors[i].Elements()
	}
	return n
}

// flatDelta returns trained − base coordinate by coordinate; the two must have the same
// tensors (names, types, shapes).
func flatDelta(base, trained *fl.File) ([]float32, error) {
	if len(base.Tensors) != len(trained.Tensors) {
		return nil, fmt.Errorf("the update has %d tensors, the base model %d", len(trained.Tensors), len(base.Tensors))
	}
	out := make([]float32, 0, flatDim(base))
	for i := range base.Tensors {
		b, t := &base.Tensors[i], &trained.Tensors[i]
		if b.Name != t.Name || b.DType != t.DType || fmt.Sprint(b.Shape) != fmt.Sprint(t.Shape) {
			return nil, fmt.Errorf("the update's tensor %s (%s %v) does not match the base model's %s (%s %v)", t.Name, t.DType, t.Shape, b.Name, b.DType, b.Shape)
		}
		for j := range b.Elements() {
			d := t.At(j) - b.At(j)
			if math.IsNaN(d) || math.IsInf(d, 0) {
				return nil, fmt.Errorf("tensor %s has a non-finite element", t.Name)
			}
			out = append(out, float32(d))
		}
	}
	return out, nil
}

// scaleTo scales v down to L2 norm bound if it is longer, and returns its norm before.
func scaleTo(v []float32, bound float64) float64 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	norm := math.Sqrt(ss)
	if bound > 0 && norm > bound {
		f := float32(bound / norm)
		for i := range v {
			v[i] *= f
		}
	}
	return norm
}

// addDelta returns base + delta as a new file with the base's layout.
func addDelta(base *fl.File, delta []float32) (*fl.File, error) {
	if len(delta) != flatDim(base) {
		return nil, fmt.Errorf("a delta of %d coordinates for a model of %d", len(delta), flatDim(base))
	}
	out := &fl.File{Tensors: make([]fl.Tensor, len(base.Tensors))}
	k := 0
	for i := range base.Tensors {
		b := &base.Tensors[i]
		t := fl.Tensor{Name: b.Name, DType: b.DType, Shape: append([]int(nil), b.Shape...), Data: append([]byte(nil), b.Data...)}
		for j := range t.Elements() {
			t.Set(j, b.At(j)+float64(delta[k]))
			k++
		}
		out.Tensors[i] = t
	}
	return out, nil
}
