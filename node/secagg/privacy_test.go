package secagg

import (
	"math/bits"
	"testing"
)

// TestMaskedInputLooksRandom: with two clients and no dropouts, client 0's masked input shares
// no coordinate with its quantised input, changes completely with fresh randomness for the same
// input, and its bits are balanced (as a uniform vector's would be).
func TestMaskedInputLooksRandom(t *testing.T) {
	const dim = 4096
	p := DefaultParams(2)
	x := make([]float32, dim)
	for c := range x {
		x[c] = 0.25 // a constant input: any structure left would show
	}
	q, err := Quantise(p, x, 7)
	if err != nil {
		t.Fatal(err)
	}
	masked := func(seed uint64) []uint64 {
		f := newFixtureDim(t, p, 2, seed, dim)
		y, err := f.clients[0].MaskedInput(f.in[0], x, 7)
		if err != nil {
			t.Fatal(err)
		}
		return y
	}
	y1, y2 := masked(1), masked(2)
	var sameQ, sameY, ones int
	for c := range y1 {
		if y1[c] == q[c] {
			sameQ++
		}
		if y1[c] == y2[c] {
			sameY++
		}
		ones += bits.OnesCount64(y1[c])
	}
	if sameQ != 0 || sameY != 0 {
		t.Fatalf("masked input equals the quantised input in %d and another run's in %d of %d coordinates, want 0", sameQ, sameY, dim+1)
	}
	// 64·4097 bits: a uniform vector's count is within ±1% of half with overwhelming probability
	// (σ ≈ 256, 1% ≈ 2600 ≈ 10σ).
	total := 64 * (dim + 1)
	if ones < total/2-total/100 || ones > total/2+total/100 {
		t.Fatalf("masked input has %d of %d bits set, want about half", ones, total)
	}
}

// newFixtureDim is newFixture for vectors of dim coordinates.
func newFixtureDim(t testing.TB, p Params, n int, seed uint64, dim int) *fixture {
	t.Helper()
	f := &fixture{p: p, round: []byte("round-fixture"), clients: make([]*Client, n), roster: make([]Keys, n), sealed: make([][]Sealed, n), in: make([][]Sealed, n)}
	rnd := testRand(seed)
	for i := range n {
		c, err := NewClient(p, f.round, rnd)
		if err != nil {
			t.Fatal(err)
		}
		f.clients[i], f.roster[i] = c, c.Keys()
	}
	var err error
	if f.srv, err = NewServer(p, f.round, f.roster, dim); err != nil {
		t.Fatal(err)
	}
	for i, c := range f.clients {
		if f.sealed[i], err = c.ShareKeys(f.roster, i); err != nil {
			t.Fatal(err)
		}
		if err := f.srv.AddShares(i, f.sealed[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range f.clients {
		f.in[i] = f.srv.SharesFor(i)
	}
	return f
}
