package fl

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Rules of aggregation.
const (
	RuleFedAvg      = "fedavg"
	RuleMedian      = "median"
	RuleTrimmedMean = "trimmed_mean"
)

// ErrNoUpdates is returned when there is nothing to aggregate.
var ErrNoUpdates = errors.New("no updates to aggregate")

// FedAvg averages updates weighted by their sample counts as they arrive: memory is one
// accumulator per parameter (float32 for float32 tensors, float64 otherwise), whatever the number
// of updates. Updates must have passed Check.
type FedAvg struct {
	base   *File
	sums   [][]float64 // non-float32 tensors
	sums32 [][]float32 // float32 tensors
	weight float64
}

// NewFedAvg starts an average over updates of base.
func NewFedAvg(base *File) *FedAvg {
	a := &FedAvg{base: base, sums: make([][]float64, len(base.Tensors)), sums32: make([][]float32, len(base.Tensors))}
	for i := range base.Tensors {
		if base.Tensors[i].DType == F32 {
			a.sums32[i] = make([]float32, base.Tensors[i].Elements())
		} else {
			a.sums[i] = make([]float64, base.Tensors[i].Elements())
		}
	}
	return a
}

// Add folds one update in.
func (a *FedAvg) Add(u *File, samples uint64) {
	w := float64(samples)
	for i := range u.Tensors {
		t := &u.Tensors[i]
		if s := a.sums32[i]; s != nil {
			addF32(s, t.Data, float32(w))
			continue
		}
		s := a.sums[i]
		for j := range s {
			s[j] += w * t.At(j)
		}
	}
	a.weight += w
}

// Result returns the weighted mean as a file of the base's dtypes. Float32 sums become the
// result in place (their memory is the result's tensor data), so Result allocates nothing for
// float32 models and the FedAvg must not be used afterwards.
func (a *FedAvg) Result() (*File, error) {
	if a.weight == 0 {
		return nil, ErrNoUpdates
	}
	out := &File{Metadata: map[string]string{}}
	for i := range a.base.Tensors {
		b := &a.base.Tensors[i]
		if s := a.sums32[i]; s != nil && littleEndian && len(s) > 0 {
			scaleF32(s, float32(1/a.weight))
			out.Tensors = append(out.Tensors, Tensor{Name: b.Name, DType: b.DType, Shape: b.Shape, Data: f32Bytes(s)})
			continue
		}
		t := NewTensor(b.Name, b.DType, b.Shape...)
		if s := a.sums32[i]; s != nil {
			for j, v := range s {
				t.Set(j, float64(v)/a.weight)
			}
		} else {
			for j, v := range a.sums[i] {
				t.Set(j, v/a.weight)
			}
		}
		out.Tensors = append(out.Tensors, t)
	}
	a.sums32, a.sums = nil, nil
	return out, nil
}

// Robust aggregates with a coordinate-wise rule: median, or the mean after dropping the trim
// fraction of the lowest and of the highest values of each coordinate.
func Robust(rule string, base *File, updates []*File, trim float64) (*File, error) {
	if len(updates) == 0 {
		return nil, ErrNoUpdates
	}
	if rule == RuleTrimmedMean && (trim < 0 || trim >= 0.5) {
		return nil, fmt.Errorf("trim fraction %v must be in [0, 0.5)", trim)
	}
	out := &File{Metadata: map[string]string{}}
	col := make([]float64, len(updates))
	for i := range base.Tensors {
		b := &base.Tensors[i]
		t := NewTensor(b.Name, b.DType, b.Shape...)
		for j, n := 0, b.Elements(); j < n; j++ {
			for k, u := range updates {
				col[k] = u.Tensors[i].At(j)
			}
			sort.Float64s(col)
			switch rule {
			case RuleMedian:
				m := len(col) / 2
				v := col[m]
				if len(col)%2 == 0 {
					v = (col[m-1] + col[m]) / 2
				}
				t.Set(j, v)
			case RuleTrimmedMean:
				k := int(math.Floor(trim * float64(len(col))))
				kept := col[k : len(col)-k]
				var sum float64
				for _, v := range kept {
					sum += v
				}
				t.Set(j, sum/float64(len(kept)))
			default:
				return nil, fmt.Errorf("unknown rule %q: use fedavg, median or trimmed_mean", rule)
			}
		}
		out.Tensors = append(out.Tensors, t)
	}
	return out, nil
}
