package fl

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestAddFromMatchesAdd: folding updates streamed from their encoded bytes gives exactly what
// folding the parsed files gives, for every dtype and for tensors larger than one piece.
func TestAddFromMatchesAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	mk := func() *File {
		f := &File{Metadata: map[string]string{}, Tensors: []Tensor{
			NewTensor("a", F32, 3, streamPiece/4+5), // spans two pieces
			NewTensor("b", F64, 7),
			NewTensor("c", F16, 9),
			NewTensor("d", BF16, 2, 2),
		}}
		for i := range f.Tensors {
			for j := 0; j < f.Tensors[i].Elements(); j++ {
				f.Tensors[i].Set(j, rng.Float64()*2-1)
			}
		}
		return f
	}
	base := mk()
	byAdd, byStream := NewFedAvg(base), NewFedAvg(base)
	for k := range 3 {
		u := mk()
		raw, err := u.Encode()
		if err != nil {
			t.Fatal(err)
		}
		byAdd.Add(u, uint64(k+1))
		if err := byStream.AddFrom(bytes.NewReader(raw), int64(len(raw)), uint64(k+1)); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := byAdd.Result()
	got, _ := byStream.Result()
	for i := range want.Tensors {
		if !bytes.Equal(want.Tensors[i].Data, got.Tensors[i].Data) {
			t.Errorf("tensor %s differs between Add and AddFrom", want.Tensors[i].Name)
		}
	}
	other, _ := (&File{Tensors: []Tensor{NewTensor("z", F32, 1)}}).Encode()
	if err := NewFedAvg(base).AddFrom(bytes.NewReader(other), int64(len(other)), 1); !errors.Is(err, ErrTensorSet) {
		t.Errorf("AddFrom(foreign tensors) = %v, want ErrTensorSet", err)
	}
	raw, _ := mk().Encode()
	if err := NewFedAvg(base).AddFrom(bytes.NewReader(raw[:len(raw)-3]), int64(len(raw)), 1); !errors.Is(err, ErrFormat) {
		t.Errorf("AddFrom(truncated) = %v, want ErrFormat", err)
	}
}
