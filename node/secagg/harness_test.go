package secagg

import (
	"crypto/ecdh"
	"math/big"
	"math/rand/v2"
	"testing"
)

// testRand is deterministic randomness for a test: ChaCha8 seeded by seed.
func testRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0], s[1], s[2], s[3] = byte(seed), byte(seed>>8), byte(seed>>16), byte(seed>>24)
	return rand.NewChaCha8(s)
}

// drops says when clients drop out of a round.
type drops struct {
	beforeShare, beforeInput, beforeReveal map[int]bool
}

// set makes a set of indices.
func set(is ...int) map[int]bool {
	m := make(map[int]bool, len(is))
	for _, i := range is {
		m[i] = true
	}
	return m
}

// roundResult is what runRound saw.
type roundResult struct {
	sum       []uint64
	survivors []int
	dropped   []int
	err       error // from Unmasking or Sum
}

// runRound runs one honest round over inputs xs with weights ws and the given dropouts. Any
// refusal outside Unmasking and Sum fails the test.
func runRound(tb testing.TB, p Params, round []byte, xs [][]float32, ws []uint64, d drops, seed uint64) roundResult {
	tb.Helper()
	n := len(xs)
	rnd := testRand(seed)
	clients := make([]*Client, n)
	roster := make([]Keys, n)
	for i := range n {
		c, err := NewClient(p, round, rnd)
		if err != nil {
			tb.Fatalf("NewClient(%d) = %v", i, err)
		}
		clients[i], roster[i] = c, c.Keys()
	}
	srv, err := NewServer(p, round, roster, len(xs[0]))
	if err != nil {
		tb.Fatalf("NewServer = %v", err)
	}
	for i, c := range clients {
		if d.beforeShare[i] {
			continue
		}
		sealed, err := c.ShareKeys(roster, i)
		if err != nil {
			tb.Fatalf("client %d: ShareKeys = %v", i, err)
		}
		if err := srv.AddShares(i, sealed); err != nil {
			tb.Fatalf("AddShares(%d) = %v", i, err)
		}
	}
	for i, c := range clients {
		if d.beforeShare[i] || d.beforeInput[i] {
			continue
		}
		y, err := c.MaskedInput(srv.SharesFor(i), xs[i], ws[i])
		if err != nil {
			tb.Fatalf("client %d: MaskedInput = %v", i, err)
		}
		if err := srv.AddInput(i, y); err != nil {
			tb.Fatalf("AddInput(%d) = %v", i, err)
		}
	}
	var r roundResult
	r.survivors, r.dropped, r.err = srv.Unmasking()
	if r.err != nil {
		return r
	}
	for _, i := range r.survivors {
		if d.beforeReveal[i] {
			continue
		}
		rev, err := clients[i].Unmask(r.survivors, r.dropped)
		if err != nil {
			tb.Fatalf("client %d: Unmask = %v", i, err)
		}
		if err := srv.AddReveals(i, rev); err != nil {
			tb.Fatalf("AddReveals(%d) = %v", i, err)
		}
	}
	r.sum, r.err = srv.Sum()
	return r
}

// plainSum is the sum of the given clients' Quantise vectors.
func plainSum(tb testing.TB, p Params, xs [][]float32, ws []uint64, who []int) []uint64 {
	tb.Helper()
	out := make([]uint64, len(xs[0])+1)
	for _, i := range who {
		q, err := Quantise(p, xs[i], ws[i])
		if err != nil {
			tb.Fatalf("Quantise(client %d) = %v", i, err)
		}
		for c, v := range q {
			out[c] += v
		}
	}
	return out
}

// exactMean is the exact weighted mean of the clamped inputs of clients who (weights clamped to
// 1..MaxWeight), computed in big.Float and rounded once to float64.
func exactMean(p Params, xs [][]float32, ws []uint64, who []int) []float64 {
	dim := len(xs[0])
	out := make([]float64, dim)
	var W big.Float
	W.SetPrec(256)
	for _, i := range who {
		W.Add(&W, new(big.Float).SetUint64(p.Weight(ws[i])))
	}
	for c := range dim {
		acc := new(big.Float).SetPrec(256)
		for _, i := range who {
			x := min(max(float64(xs[i][c]), -p.Clip), p.Clip)
			term := new(big.Float).SetPrec(256).SetFloat64(x)
			term.Mul(term, new(big.Float).SetUint64(p.Weight(ws[i])))
			acc.Add(acc, term)
		}
		acc.Quo(acc, &W)
		out[c], _ = acc.Float64()
	}
	return out
}

// randomInputs draws n vectors of dim coordinates in about ±2·clip (some beyond the clip, some
// infinite) and weights from 0 to beyond maxWeight.
func randomInputs(r *rand.Rand, n, dim int, clip float64, maxWeight uint64) ([][]float32, []uint64) {
	xs := make([][]float32, n)
	ws := make([]uint64, n)
	for i := range n {
		xs[i] = make([]float32, dim)
		for c := range dim {
			xs[i][c] = float32((r.Float64()*4 - 2) * clip)
		}
		switch r.IntN(4) {
		case 0:
			ws[i] = 0
		case 1:
			ws[i] = maxWeight + r.Uint64N(1<<40)
		default:
			ws[i] = 1 + r.Uint64N(maxWeight)
		}
	}
	return xs, ws
}

// seq is 0..n−1.
func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// ecdhPriv returns the X25519 public key of scalar sk.
func ecdhPriv(sk []byte) ([]byte, error) {
	k, err := ecdh.X25519().NewPrivateKey(sk)
	if err != nil {
		return nil, err
	}
	return k.PublicKey().Bytes(), nil
}
