package secagg

import (
	"fmt"
	"math"
	"math/bits"
)

// Weight is the weight a client's input counts with: weight clamped to 1..MaxWeight.
func (p Params) Weight(weight uint64) uint64 {
	return min(max(weight, 1), p.MaxWeight)
}

// Quantise is a client's unmasked contribution: coordinate c is w·round(clamp(x_c, −Clip, Clip)
// ·2^Bits) modulo 2^64 (two's complement) with w = p.Weight(weight), and the last coordinate is
// w. The Server's Sum is the sum of the survivors' Quantise vectors modulo 2^64. It refuses a NaN
// coordinate (±Inf clamps to ±Clip).
func Quantise(p Params, x []float32, weight uint64) ([]uint64, error) {
	if err := p.checkCommon(); err != nil {
		return nil, err
	}
	out := make([]uint64, len(x)+1)
	if err := quantiseInto(p, out, x, weight); err != nil {
		return nil, err
	}
	return out, nil
}

// quantiseInto writes Quantise(p, x, weight) into dst (len(x)+1 coordinates).
func quantiseInto(p Params, dst []uint64, x []float32, weight uint64) error {
	w := p.Weight(weight)
	scale := math.Ldexp(1, p.Bits)
	for c, v := range x {
		f := float64(v)
		if math.IsNaN(f) {
			return fmt.Errorf("%w: input coordinate %d is NaN", ErrMessage, c)
		}
		f = min(max(f, -p.Clip), p.Clip)
		dst[c] = uint64(int64(math.Round(f*scale))) * w
	}
	dst[len(x)] = w
	return nil
}

// Mean turns a Sum into the weighted mean vector and the total weight.
//
// Coordinate c is int64(sum_c)/W/2^Bits with W = the last coordinate, rounded to float32. It
// refuses a sum whose W is 0 or ≥ 2^62, or with a coordinate larger than W·round(Clip·2^Bits)
// in magnitude (no sum of clamped inputs can be: the sum is corrupt).
func Mean(p Params, sum []uint64) ([]float32, uint64, error) {
	if err := p.checkCommon(); err != nil {
		return nil, 0, err
	}
	if len(sum) < 2 {
		return nil, 0, fmt.Errorf("%w: a sum needs at least 2 coordinates (the vector and the weight), got %d", ErrMessage, len(sum))
	}
	dim := len(sum) - 1
	w := sum[dim]
	if w == 0 || w >= 1<<62 {
		return nil, 0, fmt.Errorf("%w: total weight %d is not in 1..2^62−1", ErrMessage, w)
	}
	hi, limit := bits.Mul64(w, uint64(p.maxQuantised()))
	if hi != 0 || limit >= 1<<63 {
		limit = 1<<63 - 1
	}
	div := float64(w) * math.Ldexp(1, p.Bits)
	out := make([]float32, dim)
	for c, s := range sum[:dim] {
		v := int64(s)
		mag := uint64(v)
		if v < 0 {
			mag = -mag
		}
		if mag > limit {
			return nil, 0, fmt.Errorf("%w: coordinate %d of the sum (%d) exceeds what weight %d of clamped inputs can give: the sum is corrupt", ErrMessage, c, v, w)
		}
		out[c] = float32(float64(v) / div)
	}
	return out, w, nil
}

// QuantisationBound is the most one coordinate of Mean can differ from the exact weighted mean
// of the clamped inputs.
//
// It is 2^−(Bits+1) (rounding each input to the fixed-point grid; weighting averages those
// errors, so it does not grow with n) plus the float rounding of the result: float32 (a relative
// 2^−24) and float64 in the division (a relative 2^−52 or so, bounded generously by 2^−49) on a
// mean of magnitude at most Clip + 2^−(Bits+1). FixedPointBound is the first term alone.
func QuantisationBound(p Params) float64 {
	fp := FixedPointBound(p)
	return fp + (p.Clip+fp)*(math.Ldexp(1, -24)+math.Ldexp(1, -49))
}

// FixedPointBound is 2^−(Bits+1): the most the exact mean of the quantised inputs (before any
// float rounding) differs from the exact weighted mean of the clamped inputs.
func FixedPointBound(p Params) float64 { return math.Ldexp(1, -(p.Bits + 1)) }
