// Package fl is CaliFusion's federated-learning core: safetensors files (the format PyTorch and
// Hugging Face users already have), the checks an update must pass, and the aggregation rules.
//
// An aggregation rule is an Aggregator (aggregate.go) built by name from one registry
// (registry.go): each rule is one file that registers itself (fedavg.go, median.go,
// trimmed_mean.go), and every list of rule names elsewhere (round validation in announce and in
// round_open, the CLI's help) is read from Rules, so adding a rule is adding one file.
package fl

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// DType is a safetensors element type.
type DType string

// Supported element types.
const (
	F32  DType = "F32"
	F64  DType = "F64"
	F16  DType = "F16"
	BF16 DType = "BF16"
)

// Size returns the bytes per element, or 0 for an unsupported type.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case F64:
		return 8
	case F16, BF16:
		return 2
	}
	return 0
}

// MaxHeader caps the JSON header of a safetensors file.
const MaxHeader = 100 << 20

// ErrFormat is returned for a file that is not valid safetensors.
var ErrFormat = errors.New("not a valid safetensors file")

// Tensor is one named tensor; Data is little-endian and, after Parse, a view into the file bytes.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// Elements returns the number of elements of the shape.
func (t *Tensor) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a parsed safetensors file.
type File struct {
	Tensors  []Tensor // sorted by name
	Metadata map[string]string
}

type headerEntry struct {
	DType       DType    `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// Parse reads a safetensors file without copying tensor data: every check of the format is made
// (header size, JSON, dtypes, shapes against byte lengths, offsets in bounds, contiguous and
// non-overlapping, no trailing bytes).
func Parse(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: %d bytes is too short for a header", ErrFormat, len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > MaxHeader || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("%w: header length %d exceeds the file or the %d-byte cap", ErrFormat, n, MaxHeader)
	}
	data := b[8+n:]
	f, spans, err := parseHeader(b[8:8+n], int64(len(data)))
	if err != nil {
		return nil, err
	}
	for i := range f.Tensors {
		f.Tensors[i].Data = data[spans[i].begin:spans[i].end:spans[i].end]
	}
	return f, nil
}

// span is where a tensor's bytes lie in the data section.
type span struct{ begin, end int64 }

// parseHeader checks a header against a data section of dataLen bytes and returns the file's
// tensors (sorted by name, without data) and, for each, its span in the data section. It
// refuses exactly what WriteTo would not write: duplicate keys, keys other than dtype, shape
// and data_offsets in an entry, a missing field, a tensor name that is blank or
// "__metadata__"'s, a shape whose element count overflows, a header over MaxHeader.
func parseHeader(h []byte, dataLen int64) (*File, []span, error) {
	keys, vals, err := jsonObject(h)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: header: %v", ErrFormat, err)
	}
	f := &File{Metadata: map[string]string{}}
	type entry struct {
		t Tensor
		s span
	}
	var entries []entry
	for i, name := range keys {
		v := vals[i]
		if name == "__metadata__" {
			mk, mv, err := jsonObject(v)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: __metadata__ must map strings to strings: %v", ErrFormat, err)
			}
			for j, k := range mk {
				var s string
				if mv[j][0] != '"' || json.Unmarshal(mv[j], &s) != nil {
					return nil, nil, fmt.Errorf("%w: __metadata__ must map strings to strings", ErrFormat)
				}
				f.Metadata[k] = s
			}
			continue
		}
		if err := checkName(name); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		e, err := parseEntry(v)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: tensor %q: %v", ErrFormat, name, err)
		}
		if e.DType.Size() == 0 {
			return nil, nil, fmt.Errorf("%w: tensor %q has unsupported dtype %q", ErrFormat, name, e.DType)
		}
		elems, err := elements(e.Shape)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: tensor %q: %v", ErrFormat, name, err)
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin < 0 || end < begin || end > dataLen {
			return nil, nil, fmt.Errorf("%w: tensor %q offsets %v outside the %d data bytes", ErrFormat, name, e.DataOffsets, dataLen)
		}
		if elems > math.MaxInt64/int64(e.DType.Size()) || end-begin != elems*int64(e.DType.Size()) {
			return nil, nil, fmt.Errorf("%w: tensor %q holds %d bytes, its dtype %s and shape %v need more or fewer", ErrFormat, name, end-begin, e.DType, e.Shape)
		}
		entries = append(entries, entry{Tensor{Name: name, DType: e.DType, Shape: e.Shape}, span{begin, end}})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].s.begin < entries[j].s.begin })
	var at int64
	for _, e := range entries {
		if e.s.begin != at {
			return nil, nil, fmt.Errorf("%w: tensor data overlaps or leaves a gap at byte %d", ErrFormat, at)
		}
		at = e.s.end
	}
	if at != dataLen {
		return nil, nil, fmt.Errorf("%w: %d data bytes belong to no tensor", ErrFormat, dataLen-at)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].t.Name < entries[j].t.Name })
	spans := make([]span, len(entries))
	for i, e := range entries {
		f.Tensors = append(f.Tensors, e.t)
		spans[i] = e.s
	}
	return f, spans, nil
}

// Encode returns f in canonical form: tensors in name order, data contiguous.
func (f *File) Encode() ([]byte, error) {
	var b bytes.Buffer
	if _, err := f.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteTo writes f in canonical form (as Encode) without building it in memory first.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	header := map[string]any{}
	if len(f.Metadata) > 0 {
		header["__metadata__"] = f.Metadata
	}
	tensors := append([]Tensor(nil), f.Tensors...)
	sort.Slice(tensors, func(i, j int) bool { return tensors[i].Name < tensors[j].Name })
	var off int64
	for _, t := range tensors {
		if err := checkName(t.Name); err != nil {
			return 0, err
		}
		elems, err := elements(t.Shape)
		if err != nil {
			return 0, fmt.Errorf("tensor %q: %v", t.Name, err)
		}
		if t.DType.Size() == 0 || elems > math.MaxInt64/int64(t.DType.Size()) || int64(len(t.Data)) != elems*int64(t.DType.Size()) {
			return 0, fmt.Errorf("tensor %q: %d bytes do not fit dtype %s shape %v", t.Name, len(t.Data), t.DType, t.Shape)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = headerEntry{DType: t.DType, Shape: shape, DataOffsets: [2]int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	h, err := json.Marshal(header)
	if err != nil {
		return 0, err
	}
	for len(h)%8 != 0 { // pad the header with spaces, as the reference writer does
		h = append(h, ' ')
	}
	if len(h) > MaxHeader {
		return 0, fmt.Errorf("safetensors header of %d bytes exceeds the %d-byte cap", len(h), MaxHeader)
	}
	if b, ok := w.(*bytes.Buffer); ok {
		b.Grow(8 + len(h) + int(off))
	}
	head := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+len(h)), uint64(len(h)))
	n, err := w.Write(append(head, h...))
	total := int64(n)
	for _, t := range tensors {
		if err != nil {
			break
		}
		n, err = w.Write(t.Data)
		total += int64(n)
	}
	return total, err
}

// checkName refuses the tensor names a file cannot carry: blank ones and "__metadata__" (the
// header's metadata key).
func checkName(name string) error {
	if name == "__metadata__" || strings.TrimSpace(name) == "" {
		return fmt.Errorf("tensor name %q is not allowed", name)
	}
	return nil
}

// elements returns the element count of shape, refusing negative dimensions and counts that
// overflow int64 (at any prefix: a zero dimension does not excuse an overflowing one).
func elements(shape []int) (int64, error) {
	n := int64(1)
	overflow := false
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("bad shape %v", shape)
		}
		if d > 0 && n > math.MaxInt64/int64(d) {
			overflow = true
		}
		n *= int64(d)
	}
	if overflow {
		return 0, fmt.Errorf("shape %v has too many elements", shape)
	}
	return n, nil
}

// parseEntry decodes one tensor's header entry: exactly dtype, shape and data_offsets, each
// once, with their exact names.
func parseEntry(v []byte) (headerEntry, error) {
	var e headerEntry
	keys, vals, err := jsonObject(v)
	if err != nil {
		return e, err
	}
	seen := map[string]bool{}
	for i, k := range keys {
		var err error
		switch k {
		case "dtype":
			err = json.Unmarshal(vals[i], &e.DType)
		case "shape":
			err = json.Unmarshal(vals[i], &e.Shape)
		case "data_offsets":
			var offs []int64
			if err = json.Unmarshal(vals[i], &offs); err == nil && len(offs) != 2 {
				err = fmt.Errorf("%d offsets, not 2", len(offs))
			}
			if err == nil {
				e.DataOffsets = [2]int64(offs)
			}
		default:
			return e, fmt.Errorf("unknown field %q", k)
		}
		if err == nil && vals[i][0] == 'n' { // null
			err = errors.New("null")
		}
		if err != nil {
			return e, fmt.Errorf("%s: %v", k, err)
		}
		seen[k] = true
	}
	if len(seen) != 3 {
		return e, errors.New("needs dtype, shape and data_offsets")
	}
	if e.Shape == nil {
		e.Shape = []int{}
	}
	return e, nil
}

// jsonObject splits a JSON object into its keys and raw values in order, refusing duplicate
// keys (which parsers resolve differently) and anything after the object but white space.
func jsonObject(b []byte) ([]string, []json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, errors.New("not a JSON object")
	}
	var keys []string
	var vals []json.RawMessage
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k, ok := tok.(string)
		if !ok {
			return nil, nil, errors.New("not a JSON object")
		}
		if seen[k] {
			return nil, nil, fmt.Errorf("duplicate key %q", k)
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		keys, vals = append(keys, k), append(vals, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("bytes after the JSON object")
	}
	return keys, vals, nil
}

// Tensor returns the tensor called name, or nil.
func (f *File) Tensor(name string) *Tensor {
	i := sort.Search(len(f.Tensors), func(i int) bool { return f.Tensors[i].Name >= name })
	if i < len(f.Tensors) && f.Tensors[i].Name == name {
		return &f.Tensors[i]
	}
	return nil
}

// At returns element i as float64.
func (t *Tensor) At(i int) float64 {
	switch t.DType {
	case F32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:])))
	case F64:
		return math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
	case BF16:
		return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[2*i:])) << 16))
	case F16:
		return float64(halfToFloat(binary.LittleEndian.Uint16(t.Data[2*i:])))
	}
	return math.NaN()
}

// Set writes element i (rounding to the tensor's type).
func (t *Tensor) Set(i int, v float64) {
	switch t.DType {
	case F32:
		binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(float32(v)))
	case F64:
		binary.LittleEndian.PutUint64(t.Data[8*i:], math.Float64bits(v))
	case BF16:
		bits := math.Float32bits(float32(v))
		bits += 0x7fff + (bits>>16)&1 // round to nearest even
		binary.LittleEndian.PutUint16(t.Data[2*i:], uint16(bits>>16))
	case F16:
		binary.LittleEndian.PutUint16(t.Data[2*i:], floatToHalf(float32(v)))
	}
}

// NewTensor allocates a zero tensor.
func NewTensor(name string, dtype DType, shape ...int) Tensor {
	t := Tensor{Name: name, DType: dtype, Shape: shape}
	t.Data = make([]byte, t.Elements()*dtype.Size())
	return t
}

func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h & 0x3ff)
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		v := float32(math.Ldexp(float64(frac), -24))
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

func floatToHalf(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int32(bits>>23&0xff) - 127 + 15
	frac := bits & 0x7fffff
	switch {
	case bits&0x7fffffff > 0x7f800000: // NaN
		return sign | 0x7e00
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		frac |= 0x800000
		shift := uint32(14 - exp)
		h := uint16(frac >> shift)
		if frac>>(shift-1)&1 != 0 {
			h++
		}
		return sign | h
	}
	h := sign | uint16(exp)<<10 | uint16(frac>>13)
	if frac&0x1000 != 0 {
		h++
	}
	return h
}
