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
