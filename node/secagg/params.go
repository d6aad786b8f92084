package secagg

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
)

// MaxDegree is the largest effective graph degree: a client's secrets are split into one Shamir
// share per neighbour, and GF(2^8) has only so many points.
const MaxDegree = 254

// DefaultParams returns the defaults for a round of about n clients: k = the smallest even
// number ≥ 2·log2(n) (at most n−1), t = ⌊k/2⌋+1, Clip 1, Bits 24, MaxWeight 100000.
//
// Precisely: k is the smallest even number ≥ 2·⌈log2 n⌉; when that reaches n−1, k = n−1 (the
// complete graph, whatever the parity of n−1). t is computed from that effective degree. Bits is
// 24 unless n·MaxWeight·2^24 would reach 2^62 (n above about 2.7 million), then the largest Bits
// that keeps the ring from overflowing. Compute the defaults from the final roster size: Check
// may refuse DefaultParams(m) for a roster of n < m clients (t can exceed the smaller degree).
func DefaultParams(n int) Params {
	if n < 2 {
		n = 2
	}
	lg := bits.Len(uint(n - 1)) // ⌈log2 n⌉ for n ≥ 2
	k := 2 * lg
	if k >= n-1 {
		k = n - 1
	}
	p := Params{Neighbours: k, Threshold: k/2 + 1, Clip: 1, Bits: 24, MaxWeight: 100000}
	for p.Bits > 1 && p.ringOverflows(n) {
		p.Bits--
	}
	return p
}

// Degree is the effective degree of the masking graph for degree parameter k over n clients:
// n−1 (the complete graph) when k is 0 or at least n−1, otherwise k.
func Degree(k, n int) int {
	if k <= 0 || k >= n-1 {
		return n - 1
	}
	return k
}

// Check validates p for a roster of n clients: 2 ≤ n, k/2 < t ≤ k, the ring cannot overflow
// (n·MaxWeight·Clip·2^Bits < 2^62), Bits in 1..40, Clip finite and > 0.
//
// Also: k is 0, ≥ n−1 or an even number (the ring graph is k-regular only for even k); the
// effective degree (Degree) is at most MaxDegree; MaxWeight ≥ 1; Clip·2^Bits rounds to at
// least 1. The bound uses round(Clip·2^Bits), the largest quantised magnitude.
func (p Params) Check(n int) error {
	if err := p.checkCommon(); err != nil {
		return err
	}
	if n < 2 {
		return fmt.Errorf("%w: a round needs at least 2 clients, got %d", ErrParams, n)
	}
	if p.Neighbours > 0 && p.Neighbours < n-1 && p.Neighbours%2 != 0 {
		return fmt.Errorf("%w: the graph degree k=%d must be even (or 0, or ≥ n−1=%d for the complete graph)", ErrParams, p.Neighbours, n-1)
	}
	k := Degree(p.Neighbours, n)
	if k > MaxDegree {
		return fmt.Errorf("%w: the effective graph degree %d for %d clients exceeds %d; set Neighbours to at most %d", ErrParams, k, n, MaxDegree, MaxDegree)
	}
	if 2*p.Threshold <= k || p.Threshold > k {
		return fmt.Errorf("%w: threshold t=%d must satisfy k/2 < t ≤ k for the effective degree k=%d (%d clients)", ErrParams, p.Threshold, k, n)
	}
	if p.ringOverflows(n) {
		return fmt.Errorf("%w: n·MaxWeight·Clip·2^Bits = %d·%d·%g·2^%d reaches 2^62: lower Bits, Clip or MaxWeight", ErrParams, n, p.MaxWeight, p.Clip, p.Bits)
	}
	return nil
}

// checkCommon validates the parts of p that do not depend on the roster size.
func (p Params) checkCommon() error {
	switch {
	case p.Neighbours < 0:
		return fmt.Errorf("%w: negative graph degree %d", ErrParams, p.Neighbours)
	case p.Threshold < 1:
		return fmt.Errorf("%w: threshold %d must be at least 1", ErrParams, p.Threshold)
	case p.Bits < 1 || p.Bits > 40:
		return fmt.Errorf("%w: Bits=%d must be in 1..40", ErrParams, p.Bits)
	case math.IsNaN(p.Clip) || math.IsInf(p.Clip, 0) || p.Clip <= 0:
		return fmt.Errorf("%w: Clip=%g must be finite and > 0", ErrParams, p.Clip)
	case p.MaxWeight < 1:
		return fmt.Errorf("%w: MaxWeight must be at least 1", ErrParams)
	case p.maxQuantised() < 1:
		return fmt.Errorf("%w: Clip·2^Bits = %g rounds to 0: raise Clip or Bits", ErrParams, p.Clip*math.Ldexp(1, p.Bits))
	case p.maxQuantised() >= 1<<62:
		return fmt.Errorf("%w: Clip·2^Bits = %g reaches 2^62: lower Clip or Bits", ErrParams, p.Clip*math.Ldexp(1, p.Bits))
	}
	return nil
}

// maxQuantised is round(Clip·2^Bits), the largest |q(x)| (as a float64; exact while < 2^53).
func (p Params) maxQuantised() float64 { return math.Round(p.Clip * math.Ldexp(1, p.Bits)) }

// ringOverflows reports whether n·MaxWeight·round(Clip·2^Bits) ≥ 2^62, exactly.
func (p Params) ringOverflows(n int) bool {
	q := p.maxQuantised()
	if !(q < 1<<62) {
		return true
	}
	prod := new(big.Int).SetUint64(uint64(q))
	prod.Mul(prod, new(big.Int).SetUint64(p.MaxWeight))
	prod.Mul(prod, big.NewInt(int64(n)))
	return prod.Cmp(new(big.Int).Lsh(big.NewInt(1), 62)) >= 0
}
