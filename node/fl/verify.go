package fl

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Reasons an update is rejected (shared/API.md update_rejected, data.reason).
var (
	ErrTensorSet = errors.New("tensor_set")   // names differ from the base model
	ErrShape     = errors.New("shape")        // a tensor's shape differs
	ErrDType     = errors.New("dtype")        // a tensor's dtype differs
	ErrNonFinite = errors.New("non_finite")   // NaN or Inf
	ErrNorm      = errors.New("norm")         // L2 norm of the delta above the bound
	ErrSamples   = errors.New("sample_count") // zero or absurd sample count
)

// MaxSamples bounds the sample count an update may claim.
const MaxSamples = 1 << 40

// Check verifies an update against the base model: same tensor names, shapes and dtypes, every
// value finite, the L2 norm of (update − base) at most clipNorm (0: no bound), and a plausible
// sample count. It returns the delta's norm.
func Check(base, update *File, samples uint64, clipNorm float64) (float64, error) {
	if samples == 0 || samples > MaxSamples {
		return 0, fmt.Errorf("%w: %d", ErrSamples, samples)
	}
	if len(base.Tensors) != len(update.Tensors) {
		return 0, fmt.Errorf("%w: %d tensors, the base model has %d", ErrTensorSet, len(update.Tensors), len(base.Tensors))
	}
	var sq float64
	for i := range base.Tensors {
		b, u := &base.Tensors[i], &update.Tensors[i]
		switch {
		case b.Name != u.Name:
			return 0, fmt.Errorf("%w: %q is not in the base model", ErrTensorSet, u.Name)
		case !slices.Equal(b.Shape, u.Shape):
			return 0, fmt.Errorf("%w: %q is %v, the base has %v", ErrShape, u.Name, u.Shape, b.Shape)
		case b.DType != u.DType:
			return 0, fmt.Errorf("%w: %q is %s, the base has %s", ErrDType, u.Name, u.DType, b.DType)
		}
		for j, n := 0, u.Elements(); j < n; j++ {
			v := u.At(j)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("%w: %q[%d] = %v", ErrNonFinite, u.Name, j, v)
			}
			d := v - b.At(j)
			sq += d * d
		}
	}
	norm := math.Sqrt(sq)
	if clipNorm > 0 && norm > clipNorm {
		return norm, fmt.Errorf("%w: %.4g exceeds the bound %.4g", ErrNorm, norm, clipNorm)
	}
	return norm, nil
}

// Reason names the rule err broke (shared/API.md update_rejected data.reason): one of the
// sentinels above, "format" for a file that is not safetensors, or "invalid".
func Reason(err error) string {
	for _, r := range []error{ErrTensorSet, ErrShape, ErrDType, ErrNonFinite, ErrNorm, ErrSamples} {
		if errors.Is(err, r) {
			return r.Error()
		}
	}
	if errors.Is(err, ErrFormat) {
		return "format"
	}
	return "invalid"
}

// Clip returns update with its delta from base scaled down to L2 norm bound (norm is the delta's
// current norm, from Check). Values stay in the base's dtypes.
func Clip(base, update *File, norm, bound float64) *File {
	f := 1.0
	if norm > bound {
		f = bound / norm * (1 - 1e-6) // a hair inside, so rounding to the dtype stays within the bound
	}
	out := &File{Metadata: update.Metadata}
	for i := range base.Tensors {
		b, u := &base.Tensors[i], &update.Tensors[i]
		t := NewTensor(b.Name, b.DType, b.Shape...)
		for j, n := 0, b.Elements(); j < n; j++ {
			bv := b.At(j)
			t.Set(j, bv+f*(u.At(j)-bv))
		}
		out.Tensors = append(out.Tensors, t)
	}
	return out
}
