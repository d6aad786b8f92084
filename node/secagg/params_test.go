package secagg

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestDefaultParamsCheck(t *testing.T) {
	for n := 2; n <= 1000; n++ {
		p := DefaultParams(n)
		if err := p.Check(n); err != nil {
			t.Fatalf("DefaultParams(%d).Check(%d) = %v, want nil (%+v)", n, n, err, p)
		}
		k := Degree(p.Neighbours, n)
		lg := math.Ceil(math.Log2(float64(n)))
		if k != n-1 && (k%2 != 0 || float64(k) < 2*lg || float64(k-2) >= 2*lg) {
			t.Fatalf("DefaultParams(%d) degree %d, want the smallest even ≥ 2·⌈log2 n⌉ = %v", n, k, 2*lg)
		}
		if p.Threshold != k/2+1 || p.Bits != 24 || p.Clip != 1 || p.MaxWeight != 100000 {
			t.Fatalf("DefaultParams(%d) = %+v", n, p)
		}
	}
	// Far beyond: Bits shrinks so the ring cannot overflow.
	if p := DefaultParams(10_000_000); p.Check(10_000_000) != nil || p.Bits >= 24 {
		t.Fatalf("DefaultParams(1e7) = %+v, Check = %v, want fewer bits and valid", p, p.Check(10_000_000))
	}
}

func TestCheckRefuses(t *testing.T) {
	ok := Params{Neighbours: 4, Threshold: 3, Clip: 1, Bits: 16, MaxWeight: 1000}
	if err := ok.Check(10); err != nil {
		t.Fatalf("%+v.Check(10) = %v, want nil", ok, err)
	}
	with := func(f func(*Params)) Params { p := ok; f(&p); return p }
	tests := []struct {
		name string
		p    Params
		n    int
	}{
		{"one client", ok, 1},
		{"odd degree", with(func(p *Params) { p.Neighbours = 5 }), 10},
		{"negative degree", with(func(p *Params) { p.Neighbours = -2 }), 10},
		{"threshold at half", with(func(p *Params) { p.Threshold = 2 }), 10},
		{"threshold above degree", with(func(p *Params) { p.Threshold = 5 }), 10},
		{"threshold above the complete degree", with(func(p *Params) { p.Neighbours = 0; p.Threshold = 4 }), 4},
		{"zero threshold", with(func(p *Params) { p.Threshold = 0 }), 10},
		{"zero bits", with(func(p *Params) { p.Bits = 0 }), 10},
		{"41 bits", with(func(p *Params) { p.Bits = 41 }), 10},
		{"zero clip", with(func(p *Params) { p.Clip = 0 }), 10},
		{"negative clip", with(func(p *Params) { p.Clip = -1 }), 10},
		{"NaN clip", with(func(p *Params) { p.Clip = math.NaN() }), 10},
		{"infinite clip", with(func(p *Params) { p.Clip = math.Inf(1) }), 10},
		{"tiny clip", with(func(p *Params) { p.Clip = 1e-9 }), 10},
		{"zero weight", with(func(p *Params) { p.MaxWeight = 0 }), 10},
		{"degree beyond 254", with(func(p *Params) { p.Neighbours = 0; p.Threshold = 200 }), 300},
		// 10·2^22·1·2^40 = 10·2^62 ≥ 2^62.
		{"ring overflow", with(func(p *Params) { p.Bits = 40; p.MaxWeight = 1 << 22 }), 10},
		// Exactly 2^62: 4·2^20·2^40·1.
		{"ring overflow at the edge", with(func(p *Params) { p.Bits = 40; p.MaxWeight = 1 << 20; p.Neighbours = 0; p.Threshold = 2 }), 4},
		{"huge clip", with(func(p *Params) { p.Clip = 1e30 }), 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.p.Check(tc.n); !errors.Is(err, ErrParams) {
				t.Fatalf("%+v.Check(%d) = %v, want ErrParams", tc.p, tc.n, err)
			}
		})
	}
	// Just below the edge passes.
	edge := Params{Neighbours: 0, Threshold: 2, Clip: 1, Bits: 40, MaxWeight: 1<<20 - 1}
	if err := edge.Check(4); err != nil {
		t.Fatalf("%+v.Check(4) = %v, want nil (4·(2^20−1)·2^40 < 2^62)", edge, err)
	}
}

// TestQuantisationBounds: for random vectors (beyond ±Clip, ±Inf) and extreme weights, at the
// largest n the ring allows, Mean of the sum of Quantise is the exact weighted mean of the
// clamped inputs within QuantisationBound, and the sum does not wrap.
func TestQuantisationBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for rep := range 200 {
		p := Params{Neighbours: 0, Clip: []float64{0.25, 1, 7.5}[rep%3], Bits: 1 + r.IntN(40), MaxWeight: 1 + r.Uint64N(1<<20)}
		// The largest n with n·MaxWeight·round(Clip·2^Bits) < 2^62, at most 40.
		q := p.maxQuantised()
		n := int(min(40, math.Floor((math.Ldexp(1, 62)-1)/(q*float64(p.MaxWeight)))))
		if n < 2 {
			continue
		}
		p.Threshold = n/2 + 1
		if n-1 > MaxDegree {
			p.Neighbours = MaxDegree
		}
		if err := p.Check(n); err != nil {
			t.Fatalf("%+v.Check(%d) = %v", p, n, err)
		}
		xs, ws := randomInputs(r, n, 8, p.Clip, p.MaxWeight)
		xs[0][0], xs[0][1] = float32(math.Inf(1)), float32(math.Inf(-1))
		if rep%2 == 0 { // the extremes: every input at ±Clip with the largest weight
			for i := range xs {
				ws[i] = math.MaxUint64
				for c := range xs[i] {
					xs[i][c] = float32(math.Copysign(2*p.Clip, float64(c%2)-0.5))
				}
			}
		}
		sum := plainSum(t, p, xs, ws, seq(n))
		checkMean(t, p, sum, exactMean(p, xs, ws, seq(n)))
		_, w, _ := Mean(p, sum)
		var want uint64
		for _, x := range ws {
			want += p.Weight(x)
		}
		if w != want {
			t.Fatalf("Mean weight = %d, want %d", w, want)
		}
	}
}

func TestQuantiseClamps(t *testing.T) {
	p := Params{Clip: 1, Bits: 4, MaxWeight: 10, Threshold: 1}
	q, err := Quantise(p, []float32{0.5, -3, 3, float32(math.Inf(-1)), 1.0 / 32}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	// 0.5·16 = 8, −16, 16, −16, round(0.5) = 1 (away from zero); weight 10.
	want := []int64{80, -160, 160, -160, 10, 10}
	for c := range want {
		if int64(q[c]) != want[c] {
			t.Fatalf("Quantise = %v, want %v", q, want)
		}
	}
	if q, _ := Quantise(p, []float32{1}, 0); q[1] != 1 {
		t.Fatalf("Quantise weight 0 → %d, want 1", q[1])
	}
	if _, err := Quantise(p, []float32{float32(math.NaN())}, 1); !errors.Is(err, ErrMessage) {
		t.Fatalf("Quantise(NaN) = %v, want ErrMessage", err)
	}
}

func TestMeanRefusesCorruptSums(t *testing.T) {
	p := Params{Clip: 1, Bits: 4, MaxWeight: 10, Threshold: 1}
	for _, sum := range [][]uint64{
		{5},              // no vector
		{5, 0},           // zero weight
		{5, 1 << 62},     // weight too large
		{17, 1},          // 17 > 1·16
		{^uint64(16), 1}, // −17
	} {
		if _, _, err := Mean(p, sum); !errors.Is(err, ErrMessage) {
			t.Fatalf("Mean(%v) = %v, want ErrMessage", sum, err)
		}
	}
	if m, w, err := Mean(p, []uint64{16, ^uint64(15), 1}); err != nil || m[0] != 1 || m[1] != -1 || w != 1 {
		t.Fatalf("Mean([16 −16 1]) = %v, %d, %v, want [1 −1], 1", m, w, err)
	}
}
