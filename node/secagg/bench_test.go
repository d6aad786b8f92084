package secagg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

const benchDim = 100000

var benchNs = []int{5, 10, 20, 50}

// benchInputs draws n float32 vectors of benchDim coordinates.
func benchInputs(n int) [][]float32 {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	xs := make([][]float32, n)
	for i := range xs {
		xs[i] = make([]float32, benchDim)
		for c := range xs[i] {
			xs[i][c] = float32(r.NormFloat64() * 0.1)
		}
	}
	return xs
}

// BenchmarkClientMaskedInput is one client's MaskedInput (quantise, the self mask and one
// pairwise mask per neighbour) for dim = 100000, in rounds of n clients with DefaultParams(n).
func BenchmarkClientMaskedInput(b *testing.B) {
	for _, n := range benchNs {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			p := DefaultParams(n)
			x := benchInputs(1)[0]
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				f := newFixtureDim(b, p, n, uint64(i), benchDim)
				b.StartTimer()
				if _, err := f.clients[0].MaskedInput(f.in[0], x, 10); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServerRound is the server's (coordinator's) whole work in a round of n clients with
// DefaultParams(n), dim = 100000 and one client dropping after ShareKeys: the roster, routing,
// n−1 masked inputs into the running sum, the reveals, and Sum (n−1 self masks and the dropped
// client's pairwise masks removed). The clients' work is done once, outside the timer. It
// reports ns/op divided by n·log2(n) as ns/nlog2n.
func BenchmarkServerRound(b *testing.B) {
	for _, n := range benchNs {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			p := DefaultParams(n)
			xs := benchInputs(n)
			f := newFixtureDim(b, p, n, 1, benchDim)
			drop := n - 1
			ys := make([][]uint64, n)
			for i := range drop {
				y, err := f.clients[i].MaskedInput(f.in[i], xs[i], 10)
				if err != nil {
					b.Fatal(err)
				}
				ys[i] = y
			}
			survivors, dropped := seq(drop), []int{drop}
			reveals := make([][]Reveal, n)
			for _, i := range survivors {
				r, err := f.clients[i].Unmask(survivors, dropped)
				if err != nil {
					b.Fatal(err)
				}
				reveals[i] = r
			}
			b.ReportAllocs()
			for b.Loop() {
				srv, err := NewServer(p, f.round, f.roster, benchDim)
				if err != nil {
					b.Fatal(err)
				}
				for i := range n {
					if err := srv.AddShares(i, f.sealed[i]); err != nil {
						b.Fatal(err)
					}
				}
				for i := range n {
					_ = srv.SharesFor(i)
				}
				for _, i := range survivors {
					if err := srv.AddInput(i, ys[i]); err != nil {
						b.Fatal(err)
					}
				}
				if _, _, err := srv.Unmasking(); err != nil {
					b.Fatal(err)
				}
				for _, i := range survivors {
					if err := srv.AddReveals(i, reveals[i]); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := srv.Sum(); err != nil {
					b.Fatal(err)
				}
			}
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(perOp/(float64(n)*math.Log2(float64(n))), "ns/nlog2n")
		})
	}
}

// BenchmarkPlainSum is the plain (insecure) coordinator's work for the same round: the weighted
// sum of n−1 float32 vectors of dim = 100000, for comparison with BenchmarkServerRound.
func BenchmarkPlainSum(b *testing.B) {
	for _, n := range benchNs {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			xs := benchInputs(n)
			for b.Loop() {
				acc := make([]float64, benchDim)
				for _, x := range xs[:n-1] {
					for c, v := range x {
						acc[c] += 10 * float64(v)
					}
				}
			}
		})
	}
}

// BenchmarkNeighbours is the whole masking graph (Graph) and one client's Neighbours for n
// clients with DefaultParams(n).
func BenchmarkNeighbours(b *testing.B) {
	for _, n := range []int{50, 1000} {
		p := DefaultParams(n)
		seed := RosterSeed([]byte("bench"), nil)
		b.Run(fmt.Sprintf("Graph/n=%d", n), func(b *testing.B) {
			for b.Loop() {
				_ = Graph(n, p.Neighbours, seed)
			}
		})
		b.Run(fmt.Sprintf("Neighbours/n=%d", n), func(b *testing.B) {
			for b.Loop() {
				_ = Neighbours(n, p.Neighbours, 0, seed)
			}
		})
	}
}
