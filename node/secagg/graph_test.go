package secagg

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

func TestGraph(t *testing.T) {
	for _, n := range []int{2, 3, 5, 8, 13, 50, 301} {
		for _, k := range []int{0, 2, 4, 6, 10, 20, n - 1, n + 3} {
			t.Run(fmt.Sprintf("n=%d/k=%d", n, k), func(t *testing.T) {
				seed := RosterSeed([]byte(fmt.Sprint(n, k)), nil)
				g := Graph(n, k, seed)
				want := Degree(k, n)
				if k%2 == 1 && want != n-1 {
					want = k - 1
				}
				for i := range n {
					nb := Neighbours(n, k, i, seed)
					if !slices.Equal(nb, g[i]) {
						t.Fatalf("Neighbours(%d) = %v, Graph()[%d] = %v", i, nb, i, g[i])
					}
					if len(nb) != want || !slices.IsSorted(nb) || slices.Contains(nb, i) {
						t.Fatalf("Neighbours(%d, %d, %d) = %v, want %d sorted others", n, k, i, nb, want)
					}
					if len(slices.Compact(slices.Clone(nb))) != len(nb) {
						t.Fatalf("Neighbours(%d) = %v has repeats", i, nb)
					}
					for _, j := range nb {
						if !slices.Contains(g[j], i) {
							t.Fatalf("%d ∈ N(%d) but %d ∉ N(%d)", j, i, i, j)
						}
					}
				}
				if !slices.EqualFunc(g, Graph(n, k, seed), slices.Equal) {
					t.Fatalf("Graph is not deterministic in its seed")
				}
			})
		}
	}
	if Neighbours(5, 2, 5, [32]byte{}) != nil || Neighbours(5, 2, -1, [32]byte{}) != nil {
		t.Fatalf("Neighbours outside the roster, want nil")
	}
}

func TestGraphSeedsDiffer(t *testing.T) {
	n, k := 40, 6
	base := Graph(n, k, [32]byte{1})
	for b := range 32 {
		var seed [32]byte
		seed[0] = 1
		seed[b] ^= 0x80
		if slices.EqualFunc(base, Graph(n, k, seed), slices.Equal) {
			t.Fatalf("seeds differing in byte %d give the same graph", b)
		}
	}
}

func TestRosterSeed(t *testing.T) {
	roster := []Keys{{Seal: bytes.Repeat([]byte{1}, 32), Mask: bytes.Repeat([]byte{2}, 32)}, {Seal: bytes.Repeat([]byte{3}, 32), Mask: bytes.Repeat([]byte{4}, 32)}}
	round := []byte("r1")
	base := RosterSeed(round, roster)
	if RosterSeed(round, roster) != base {
		t.Fatalf("RosterSeed is not deterministic")
	}
	clone := func() []Keys {
		out := make([]Keys, len(roster))
		for i, k := range roster {
			out[i] = Keys{Seal: bytes.Clone(k.Seal), Mask: bytes.Clone(k.Mask)}
		}
		return out
	}
	for i := range roster {
		for _, mask := range []bool{false, true} {
			r := clone()
			key := r[i].Seal
			if mask {
				key = r[i].Mask
			}
			key[31] ^= 1
			if RosterSeed(round, r) == base {
				t.Fatalf("RosterSeed unchanged when client %d's key (mask %v) changes", i, mask)
			}
		}
	}
	if RosterSeed([]byte("r2"), roster) == base {
		t.Fatalf("RosterSeed unchanged with another round")
	}
	if RosterSeed(round, []Keys{roster[1], roster[0]}) == base {
		t.Fatalf("RosterSeed unchanged when the order changes")
	}
	// Length prefixes: moving a byte between Seal and Mask changes the seed.
	r := clone()
	r[0].Mask = append([]byte{r[0].Seal[31]}, r[0].Mask...)
	r[0].Seal = r[0].Seal[:31]
	if RosterSeed(round, r) == base {
		t.Fatalf("RosterSeed is ambiguous between key boundaries")
	}
}
