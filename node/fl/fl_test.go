package fl

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"strconv"
	"testing"
)

func file(vals map[string][]float64, dtype DType) *File {
	f := &File{Metadata: map[string]string{}}
	for name, v := range vals {
		t := NewTensor(name, dtype, len(v))
		for i, x := range v {
			t.Set(i, x)
		}
		f.Tensors = append(f.Tensors, t)
	}
	b, _ := f.Encode()
	out, err := Parse(b)
	if err != nil {
		panic(err)
	}
	return out
}

func TestRoundTripAllDTypes(t *testing.T) {
	for _, dt := range []DType{F32, F64, F16, BF16} {
		in := &File{Metadata: map[string]string{"samples": "12"}}
		w := NewTensor("w", dt, 2, 3)
		b := NewTensor("b", dt, 3)
		vals := []float64{0, 1, -2, 0.5, 1024, -0.25}
		for i, v := range vals {
			w.Set(i, v)
		}
		b.Set(1, 3)
		in.Tensors = []Tensor{w, b}
		enc, err := in.Encode()
		if err != nil {
			t.Fatal(err)
		}
		out, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse(Encode(%s)) = %v", dt, err)
		}
		if out.Metadata["samples"] != "12" || out.Tensors[0].Name != "b" || out.Tensor("w") == nil {
			t.Fatalf("%s round trip lost structure: %+v", dt, out)
		}
		for i, v := range vals {
			if got := out.Tensor("w").At(i); got != v {
				t.Errorf("%s w[%d] = %v, want %v", dt, i, got, v)
			}
		}
		again, _ := out.Encode()
		if string(again) != string(enc) {
			t.Errorf("%s: Encode is not canonical", dt)
		}
	}
}

func header(h string, data int) []byte {
	b := make([]byte, 8, 8+len(h)+data)
	binary.LittleEndian.PutUint64(b, uint64(len(h)))
	return append(append(b, h...), make([]byte, data)...)
}

func TestMalformedHeaders(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"short", []byte{1, 2}},
		{"header past the end", header(`{}`, 0)[:9]},
		{"huge header length", func() []byte { b := make([]byte, 16); binary.LittleEndian.PutUint64(b, 1<<62); return b }()},
		{"not json", header(`{x`, 0)},
		{"bad dtype", header(`{"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}`, 1)},
		{"size mismatch", header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4)},
		{"out of bounds", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 2)},
		{"overlap", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}`, 8)},
		{"gap", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8)},
		{"trailing bytes", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 6)},
		{"negative shape", header(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`, 0)},
		{"bad metadata", header(`{"__metadata__":{"a":1}}`, 0)},
	}
	for _, tt := range tests {
		if _, err := Parse(tt.in); !errors.Is(err, ErrFormat) {
			t.Errorf("Parse(%s) = %v, want ErrFormat", tt.name, err)
		}
	}
}

// FuzzParse: whatever Parse accepts, the writer writes, and writing then parsing gives back
// the same file (names, dtypes, shapes, data, metadata).
func FuzzParse(f *testing.F) {
	good, _ := (&File{Tensors: []Tensor{NewTensor("w", F32, 2)}, Metadata: map[string]string{"k": "v"}}).Encode()
	f.Add(good)
	f.Add(header(`{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, 4))
	for _, c := range writerRefuses {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		enc, err := p.Encode()
		if err != nil {
			t.Fatalf("Encode(Parse(%q)) = %v", b, err)
		}
		q, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse(Encode(Parse(b))) = %v", err)
		}
		if !sameFile(p, q) {
			t.Fatalf("round trip changed the file:\n%+v\n%+v", p, q)
		}
	})
}

func sameFile(a, b *File) bool {
	if len(a.Tensors) != len(b.Tensors) || len(a.Metadata) != len(b.Metadata) {
		return false
	}
	for k, v := range a.Metadata {
		if w, ok := b.Metadata[k]; !ok || w != v {
			return false
		}
	}
	for i := range a.Tensors {
		x, y := a.Tensors[i], b.Tensors[i]
		if x.Name != y.Name || x.DType != y.DType || string(x.Data) != string(y.Data) || len(x.Shape) != len(y.Shape) {
			return false
		}
		for j := range x.Shape {
			if x.Shape[j] != y.Shape[j] {
				return false
			}
		}
	}
	return true
}

// writerRefuses are headers Parse used to accept although the writer never writes them (a
// name it refuses, a key it never writes, a shape it cannot count).
var writerRefuses = []struct {
	name string
	in   []byte
}{
	{"empty name", header(`{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4)},
	{"blank name", header(`{" \t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4)},
	{"duplicate tensor", header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4)},
	{"duplicate field", header(`{"a":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,8]}}`, 8)},
	{"duplicate metadata key", header(`{"__metadata__":{"k":"1","k":"2"}}`, 0)},
	{"field in another case", header(`{"a":{"DTYPE":"F32","shape":[1],"data_offsets":[0,4]}}`, 4)},
	{"unknown field", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, 4)},
	{"missing shape", header(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, 4)},
	{"null shape", header(`{"a":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}`, 4)},
	{"one offset", header(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0]}}`, 0)},
	{"three offsets", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,9]}}`, 4)},
	{"null metadata", header(`{"__metadata__":null}`, 0)},
	{"overflowing shape with a zero", header(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}`, 0)},
}

func TestParseRefusesWhatTheWriterDoesNotWrite(t *testing.T) {
	for _, c := range writerRefuses {
		if f, err := Parse(c.in); !errors.Is(err, ErrFormat) {
			t.Errorf("Parse(%s) = %+v, %v; want ErrFormat", c.name, f, err)
		}
	}
	// And the writer refuses what Parse refuses.
	for _, f := range []*File{
		{Tensors: []Tensor{{Name: " ", DType: F32, Shape: []int{0}}}},
		{Tensors: []Tensor{{Name: "__metadata__", DType: F32, Shape: []int{0}}}},
		{Tensors: []Tensor{{Name: "a", DType: F32, Shape: []int{1 << 32, 1 << 32, 0}}}},
		{Tensors: []Tensor{{Name: "a", DType: F32, Shape: []int{-1, -1}, Data: make([]byte, 4)}}},
	} {
		if b, err := f.Encode(); err == nil {
			t.Errorf("Encode(%+v) wrote %q", f.Tensors[0], b)
		}
	}
}

func TestCheck(t *testing.T) {
	base := file(map[string][]float64{"w": {1, 2}, "b": {0}}, F32)
	tests := []struct {
		name    string
		u       *File
		samples uint64
		want    error
	}{
		{"ok", file(map[string][]float64{"w": {1.5, 2}, "b": {0}}, F32), 10, nil},
		{"zero samples", file(map[string][]float64{"w": {1, 2}, "b": {0}}, F32), 0, ErrSamples},
		{"absurd samples", file(map[string][]float64{"w": {1, 2}, "b": {0}}, F32), MaxSamples + 1, ErrSamples},
		{"missing tensor", file(map[string][]float64{"w": {1, 2}}, F32), 1, ErrTensorSet},
		{"renamed tensor", file(map[string][]float64{"w": {1, 2}, "c": {0}}, F32), 1, ErrTensorSet},
		{"shape", file(map[string][]float64{"w": {1, 2, 3}, "b": {0}}, F32), 1, ErrShape},
		{"dtype", file(map[string][]float64{"w": {1, 2}, "b": {0}}, F64), 1, ErrDType},
		{"nan", file(map[string][]float64{"w": {math.NaN(), 2}, "b": {0}}, F32), 1, ErrNonFinite},
		{"inf", file(map[string][]float64{"w": {1, math.Inf(1)}, "b": {0}}, F32), 1, ErrNonFinite},
		{"norm", file(map[string][]float64{"w": {100, 2}, "b": {0}}, F32), 1, ErrNorm},
	}
	for _, tt := range tests {
		norm, err := Check(base, tt.u, tt.samples, 10)
		if !errors.Is(err, tt.want) {
			t.Errorf("Check(%s) = %v, want %v", tt.name, err, tt.want)
		}
		if tt.name == "ok" && math.Abs(norm-0.5) > 1e-9 {
			t.Errorf("Check(ok) norm = %v, want 0.5", norm)
		}
	}
}

// BenchmarkFedAvg folds 10 updates of N float32 parameters (N from CALIFUSION_BENCH_PARAMS,
// default 1M; the figure uses 25M) against copy() of the same bytes:
//
//	CALIFUSION_BENCH_PARAMS=25000000 go test ./node/fl -run '^$' -bench FedAvg -benchtime 3x
func benchParams() int {
	if n, err := strconv.Atoi(os.Getenv("CALIFUSION_BENCH_PARAMS")); err == nil && n > 0 {
		return n
	}
	return 1 << 20
}

func BenchmarkFedAvg(b *testing.B) {
	n := benchParams()
	base := &File{Tensors: []Tensor{NewTensor("w", F32, n)}}
	u := &File{Tensors: []Tensor{NewTensor("w", F32, n)}}
	b.SetBytes(int64(10 * 4 * n))
	// One untimed round first: the process's first touch of this much memory costs page faults
	// that a coordinator pays once, not every round (the copy bound's buffers are warm too).
	warm := NewFedAvg(base)
	warm.Add(u, 1)
	for b.Loop() {
		a := NewFedAvg(base)
		for range 10 {
			a.Add(u, 1)
		}
	}
}

func BenchmarkCopyBound(b *testing.B) {
	n := benchParams()
	src, dst := make([]byte, 4*n), make([]byte, 4*n)
	b.SetBytes(int64(10 * 4 * n))
	for b.Loop() {
		for range 10 {
			copy(dst, src)
		}
	}
}
