package secagg

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomParams draws valid parameters for n clients.
func randomParams(r *rand.Rand, n int) Params {
	for {
		var k int
		switch r.IntN(3) {
		case 0:
			k = 0
		case 1:
			k = n - 1
		default:
			if n >= 4 {
				k = 2 + 2*r.IntN((n-2)/2)
			}
		}
		keff := Degree(k, n)
		p := Params{
			Neighbours: k,
			Threshold:  keff/2 + 1 + r.IntN(keff-keff/2),
			Clip:       []float64{0.5, 1, 3.7, 100}[r.IntN(4)],
			Bits:       8 + r.IntN(23),
			MaxWeight:  1 + r.Uint64N(1_000_000),
		}
		if p.Check(n) == nil {
			return p
		}
	}
}

func TestMaskCancellation(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 2; n <= 12; n++ {
		for rep := range 2 {
			p := randomParams(r, n)
			t.Run(fmt.Sprintf("n=%d/%+v", n, p), func(t *testing.T) {
				xs, ws := randomInputs(r, n, 16, p.Clip, p.MaxWeight)
				res := runRound(t, p, []byte("round-cancel"), xs, ws, drops{}, uint64(n*10+rep))
				if res.err != nil {
					t.Fatalf("round = %v, want a sum", res.err)
				}
				if !slices.Equal(res.survivors, seq(n)) || len(res.dropped) != 0 {
					t.Fatalf("Unmasking() = %v, %v, want all survivors", res.survivors, res.dropped)
				}
				if want := plainSum(t, p, xs, ws, seq(n)); !slices.Equal(res.sum, want) {
					t.Fatalf("Sum() = %v, want the plain sum %v", res.sum, want)
				}
				checkMean(t, p, res.sum, exactMean(p, xs, ws, seq(n)))
			})
		}
	}
}

// checkMean asserts Mean(sum) is within QuantisationBound of want.
func checkMean(t *testing.T, p Params, sum []uint64, want []float64) {
	t.Helper()
	got, _, err := Mean(p, sum)
	if err != nil {
		t.Fatalf("Mean = %v", err)
	}
	bound := QuantisationBound(p)
	for c := range want {
		if d := math.Abs(float64(got[c]) - want[c]); !(d <= bound) {
			t.Fatalf("Mean()[%d] = %v, want %v within %g (off by %g)", c, got[c], want[c], bound, d)
		}
	}
}

func TestDropoutRecovery(t *testing.T) {
	// n = 9, k = 6, t = 4: each client's secrets survive 2 of its 6 neighbours dropping.
	sparse := Params{Neighbours: 6, Threshold: 4, Clip: 1, Bits: 20, MaxWeight: 1000}
	// n = 8, complete graph (k = 7), t = 4: any 3 may drop (a client holds no share of its own
	// secrets, so 4 of the other 7 must reveal).
	complete := Params{Neighbours: 0, Threshold: 4, Clip: 1, Bits: 20, MaxWeight: 1000}
	tests := []struct {
		name    string
		n       int
		p       Params
		d       drops
		counted []int // clients in the sum; nil: the round fails with ErrTooFew
	}{
		{"before share keys", 8, complete, drops{beforeShare: set(1, 5, 6)}, []int{0, 2, 3, 4, 7}},
		{"after share keys", 8, complete, drops{beforeInput: set(0, 3, 6)}, []int{1, 2, 4, 5, 7}},
		{"after input", 8, complete, drops{beforeReveal: set(2, 4, 5)}, seq(8)},
		{"one of each", 8, complete, drops{beforeShare: set(0), beforeInput: set(3), beforeReveal: set(6)}, []int{1, 2, 4, 5, 6, 7}},
		{"sparse share and input", 9, sparse, drops{beforeShare: set(2), beforeInput: set(7)}, []int{0, 1, 3, 4, 5, 6, 8}},
		{"sparse input and reveal", 9, sparse, drops{beforeInput: set(3), beforeReveal: set(5)}, []int{0, 1, 2, 4, 5, 6, 7, 8}},
		{"sparse two after share keys", 9, sparse, drops{beforeInput: set(0, 8)}, []int{1, 2, 3, 4, 5, 6, 7}},
		{"too many before share keys", 8, complete, drops{beforeShare: set(0, 1, 2, 3)}, nil},
		{"too many after share keys", 8, complete, drops{beforeInput: set(0, 1, 2, 3)}, nil},
		{"too many after input", 8, complete, drops{beforeReveal: set(1, 2, 3, 4)}, nil},
		{"too many mixed", 8, complete, drops{beforeShare: set(0), beforeInput: set(1, 2), beforeReveal: set(3)}, nil},
	}
	for ti, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(ti), 7))
			xs, ws := randomInputs(r, tc.n, 32, tc.p.Clip, tc.p.MaxWeight)
			res := runRound(t, tc.p, []byte("round-drop"), xs, ws, tc.d, uint64(100+ti))
			if tc.counted == nil {
				if !errors.Is(res.err, ErrTooFew) {
					t.Fatalf("round = %v (sum %v), want ErrTooFew", res.err, res.sum)
				}
				return
			}
			if res.err != nil {
				t.Fatalf("round = %v, want a sum of %v", res.err, tc.counted)
			}
			if !slices.Equal(res.survivors, tc.counted) {
				t.Fatalf("survivors = %v, want %v", res.survivors, tc.counted)
			}
			if want := plainSum(t, tc.p, xs, ws, tc.counted); !slices.Equal(res.sum, want) {
				t.Fatalf("Sum() differs from the plain sum of %v", tc.counted)
			}
			checkMean(t, tc.p, res.sum, exactMean(tc.p, xs, ws, tc.counted))
		})
	}
}

// TestDropoutRandom drops random clients at random stages in sparse graphs: the round either
// returns exactly the survivors' sum or fails with ErrTooFew, never a wrong sum.
func TestDropoutRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var ok, few int
	for rep := range 16 {
		n := 6 + r.IntN(6)
		p := randomParams(r, n)
		xs, ws := randomInputs(r, n, 8, p.Clip, p.MaxWeight)
		d := drops{set(), set(), set()}
		for i := range n {
			switch r.IntN(8) {
			case 0:
				d.beforeShare[i] = true
			case 1:
				d.beforeInput[i] = true
			case 2:
				d.beforeReveal[i] = true
			}
		}
		res := runRound(t, p, []byte("round-random"), xs, ws, d, uint64(1000+rep))
		if errors.Is(res.err, ErrTooFew) {
			few++
			continue
		}
		if res.err != nil {
			t.Fatalf("n=%d %+v: round = %v", n, p, res.err)
		}
		if want := plainSum(t, p, xs, ws, res.survivors); !slices.Equal(res.sum, want) {
			t.Fatalf("n=%d %+v drops %v: a wrong sum", n, p, d)
		}
		ok++
	}
	if ok == 0 || few == 0 {
		t.Fatalf("%d rounds summed and %d failed: want both outcomes exercised", ok, few)
	}
}
