package fl

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"
)

// RuleFedAvg averages the updates weighted by their sample counts, each capped at
// Options.MaxWeight (FedAvg).
const RuleFedAvg = "fedavg"

func init() {
	Register(RuleFedAvg, func(base *File, o Options) (Aggregator, error) {
		a := NewFedAvg(base)
		a.MaxWeight = o.MaxWeight
		return a, nil
	})
}

// FedAvg averages updates weighted by their sample counts as they arrive: memory is one
// accumulator per parameter (float32 for float32 tensors, float64 otherwise), whatever the number
// of updates. Updates must have passed Check.
//
// Weights are capped: an update weighs min(samples, MaxWeight) when MaxWeight is set (the
// round's per-trainer sample ceiling), so no claim, however large, buys more than that.
type FedAvg struct {
	base   *File
	sums   [][]float64 // non-float32 tensors
	sums32 [][]float32 // float32 tensors
	weight float64
	// MaxWeight is the per-update weight ceiling (0: none).
	MaxWeight uint64
}

// Weight is the weight an update claiming samples carries in a, after the ceiling.
func (a *FedAvg) Weight(samples uint64) float64 {
	if a.MaxWeight > 0 && samples > a.MaxWeight {
		samples = a.MaxWeight
	}
	return float64(samples)
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

// Add folds one update in; it refuses an update whose tensors do not match the base.
func (a *FedAvg) Add(u *File, samples uint64) error {
	if err := checkTensorSet(a.base, u); err != nil {
		return err
	}
	w, set := a.Weight(samples), a.weight == 0 // the first update overwrites the zeroed sums
	for i := range u.Tensors {
		t := &u.Tensors[i]
		if s := a.sums32[i]; s != nil {
			foldF32(s, t.Data, float32(w), set)
			continue
		}
		s := a.sums[i]
		for j := range s {
			s[j] += w * t.At(j)
		}
	}
	a.weight += w
	return nil
}

// streamPiece is how much of an update AddFrom holds at once.
const streamPiece = 1 << 20

// AddFrom folds in an update read from r, a safetensors file of size bytes, without holding it in
// memory: tensors are read in file order, a piece at a time, so the update costs streamPiece
// bytes instead of its size. The update must have passed Check; its tensors must match the base.
func (a *FedAvg) AddFrom(r io.Reader, size int64, samples uint64) error {
	var lenBuf [8]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrFormat, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if size < 8 || n > MaxHeader || n > uint64(size-8) {
		return fmt.Errorf("%w: header length %d exceeds the file or the %d-byte cap", ErrFormat, n, MaxHeader)
	}
	h := make([]byte, n)
	if _, err := io.ReadFull(r, h); err != nil {
		return fmt.Errorf("%w: %v", ErrFormat, err)
	}
	f, spans, err := parseHeader(h, size-8-int64(n))
	if err != nil {
		return err
	}
	if len(f.Tensors) != len(a.base.Tensors) {
		return fmt.Errorf("%w: %d tensors, the base model has %d", ErrTensorSet, len(f.Tensors), len(a.base.Tensors))
	}
	order := make([]int, len(spans))
	for i := range order {
		b, u := &a.base.Tensors[i], &f.Tensors[i]
		if b.Name != u.Name || b.DType != u.DType || u.Elements() != b.Elements() {
			return fmt.Errorf("%w: %q does not match the base model", ErrTensorSet, u.Name)
		}
		order[i] = i
	}
	sort.Slice(order, func(x, y int) bool { return spans[order[x]].begin < spans[order[y]].begin })
	w, set := a.Weight(samples), a.weight == 0 // the first update overwrites the zeroed sums
	buf := make([]byte, streamPiece)
	for _, i := range order {
		size := a.base.Tensors[i].DType.Size()
		piece := streamPiece / size * size
		for at, end := spans[i].begin, spans[i].end; at < end; {
			k := min(int64(piece), end-at)
			p := buf[:k]
			if _, err := io.ReadFull(r, p); err != nil {
				return fmt.Errorf("%w: %v", ErrFormat, err)
			}
			first := int((at - spans[i].begin) / int64(size))
			count := int(k) / size
			if s := a.sums32[i]; s != nil {
				foldF32(s[first:first+count], p, float32(w), set)
			} else {
				view := Tensor{DType: a.base.Tensors[i].DType, Data: p}
				s := a.sums[i][first : first+count]
				for j := range s {
					s[j] += w * view.At(j)
				}
			}
			at += k
		}
	}
	a.weight += w
	return nil
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
