// Package shamir is Shamir's secret sharing over GF(2^8), byte by byte: a secret is split into
// n shares, any t of which give it back, while t−1 of them say nothing about it. Threshold key
// escrow (node/keys) splits content keys with it, and secure aggregation (node/secagg) the mask
// seeds and mask keys of each trainer.
//
// The field is GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1. Arithmetic on secret bytes runs
// in constant time (no table lookups, no branches on secret data).
package shamir

import (
	"errors"
	"fmt"
	"io"
)

// MaxShares is the most shares of one secret: the non-zero elements of GF(2^8).
const MaxShares = 255

// Errors of Split and Combine.
var (
	ErrParams = errors.New("shamir: invalid parameters")
	ErrShares = errors.New("shamir: invalid shares")
)

// Share is one share of a secret: the value Y of the secret's polynomials at X (X ≠ 0), one byte
// of Y per byte of the secret.
type Share struct {
	X byte
	Y []byte
}

// Split splits secret into n shares with X = 1..n, any t of which reconstruct it
// (1 ≤ t ≤ n ≤ MaxShares); the polynomials' coefficients are read from rnd.
func Split(secret []byte, n, t int, rnd io.Reader) ([]Share, error) {
	if t < 1 || n < t || n > MaxShares {
		return nil, fmt.Errorf("%w: need 1 ≤ t ≤ n ≤ %d, got t=%d n=%d", ErrParams, MaxShares, t, n)
	}
	if len(secret) == 0 {
		return nil, fmt.Errorf("%w: empty secret", ErrParams)
	}
	coeffs := make([]byte, len(secret)*(t-1))
	if _, err := io.ReadFull(rnd, coeffs); err != nil {
		return nil, fmt.Errorf("shamir: random coefficients: %w", err)
	}
	defer clear(coeffs)
	shares := make([]Share, n)
	for i := range shares {
		x := byte(i + 1)
		y := make([]byte, len(secret))
		for b, s := range secret {
			// Horner: a_{t-1}·x^{t-1} + … + a_1·x + s.
			var acc byte
			for k := t - 2; k >= 0; k-- {
				acc = mul(acc, x) ^ coeffs[b*(t-1)+k]
			}
			y[b] = mul(acc, x) ^ s
		}
		shares[i] = Share{X: x, Y: y}
	}
	return shares, nil
}

// Combine reconstructs a secret from shares of it: t or more shares of one Split with distinct,
// non-zero X and equal lengths. Given fewer than t shares it returns a value unrelated to the
// secret; callers check the result against a commitment.
func Combine(shares []Share) ([]byte, error) {
	if len(shares) == 0 {
		return nil, fmt.Errorf("%w: no shares", ErrShares)
	}
	size := len(shares[0].Y)
	if size == 0 {
		return nil, fmt.Errorf("%w: empty share", ErrShares)
	}
	var seen [256]bool
	for _, s := range shares {
		switch {
		case s.X == 0:
			return nil, fmt.Errorf("%w: a share at x = 0", ErrShares)
		case seen[s.X]:
			return nil, fmt.Errorf("%w: two shares at x = %d", ErrShares, s.X)
		case len(s.Y) != size:
			return nil, fmt.Errorf("%w: shares of different lengths", ErrShares)
		}
		seen[s.X] = true
	}
	// Lagrange at 0: secret = Σ_i y_i · Π_{j≠i} x_j / (x_j − x_i); subtraction is XOR.
	out := make([]byte, size)
	for i, si := range shares {
		num, den := byte(1), byte(1)
		for j, sj := range shares {
			if i == j {
				continue
			}
			num = mul(num, sj.X)
			den = mul(den, sj.X^si.X)
		}
		l := mul(num, inv(den))
		for b := range out {
			out[b] ^= mul(l, si.Y[b])
		}
	}
	return out, nil
}

// mul multiplies in GF(2^8) without branches or lookups.
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= -(b & 1) & a
		a = (a << 1) ^ (-(a >> 7) & 0x1b)
		b >>= 1
	}
	return p
}

// inv returns a^-1 = a^254 (inv(0) = 0).
func inv(a byte) byte {
	r, sq := byte(1), a
	for e := byte(254); e > 0; e >>= 1 {
		if e&1 == 1 {
			r = mul(r, sq)
		}
		sq = mul(sq, sq)
	}
	return r
}
