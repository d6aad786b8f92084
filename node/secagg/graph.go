package secagg

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// Neighbours returns the neighbours of client i (sorted indices, i excluded) in the round's
// masking graph over a roster of n clients with degree k, seeded by seed (the server and every
// client derive seed from the roster: RosterSeed).
//
// The graph is a Harary ring over a permutation of 0..n−1 drawn from seed (Fisher–Yates over an
// AES-256-CTR stream keyed by seed): the client at position p is adjacent to positions
// p±1..p±⌊k/2⌋ modulo n, so the graph is symmetric and k-regular for even k. k = 0 or k ≥ n−1
// gives the complete graph (Degree). It returns nil for i outside 0..n−1.
func Neighbours(n, k, i int, seed [32]byte) []int {
	if n < 1 || i < 0 || i >= n {
		return nil
	}
	if Degree(k, n) == n-1 {
		out := make([]int, 0, n-1)
		for j := range n {
			if j != i {
				out = append(out, j)
			}
		}
		return out
	}
	perm, pos := permutation(n, seed)
	return ringNeighbours(n, k, pos[i], perm)
}

// Graph returns every client's Neighbours at once (index i holds Neighbours(n, k, i, seed)), in
// O(n·k) rather than n calls of O(n) each.
func Graph(n, k int, seed [32]byte) [][]int {
	if n < 1 {
		return nil
	}
	out := make([][]int, n)
	if Degree(k, n) == n-1 {
		for i := range n {
			out[i] = Neighbours(n, k, i, seed)
		}
		return out
	}
	perm, _ := permutation(n, seed)
	for p, i := range perm {
		out[i] = ringNeighbours(n, k, p, perm)
	}
	return out
}

// ringNeighbours lists the clients at positions p±1..p±⌊k/2⌋ (mod n), sorted.
func ringNeighbours(n, k, p int, perm []int) []int {
	h := k / 2
	out := make([]int, 0, 2*h)
	for d := 1; d <= h; d++ {
		out = append(out, perm[(p+d)%n], perm[(p-d+n)%n])
	}
	slices.Sort(out)
	return out
}

// permutation draws a uniform permutation of 0..n−1 from seed: perm[position] = client,
// pos[client] = position.
func permutation(n int, seed [32]byte) (perm, pos []int) {
	block, err := aes.NewCipher(seed[:])
	if err != nil {
		panic("secagg: aes with a 32-byte key: " + err.Error()) // unreachable
	}
	var iv [aes.BlockSize]byte
	r := &streamReader{s: cipher.NewCTR(block, iv[:])}
	perm = make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(r.uniform(uint64(i + 1)))
		perm[i], perm[j] = perm[j], perm[i]
	}
	pos = make([]int, n)
	for p, c := range perm {
		pos[c] = p
	}
	return perm, pos
}

// streamReader draws integers from a keystream.
type streamReader struct {
	s   cipher.Stream
	buf [8]byte
}

// uniform returns a uniform integer in [0, bound) by rejection sampling (bound ≥ 1).
func (r *streamReader) uniform(bound uint64) uint64 {
	limit := -bound % bound // 2^64 mod bound: reject the first limit values
	for {
		clear(r.buf[:])
		r.s.XORKeyStream(r.buf[:], r.buf[:])
		v := binary.LittleEndian.Uint64(r.buf[:])
		if v >= limit {
			return v % bound
		}
	}
}

// RosterSeed is the graph seed of a roster: SHA-256 over the round ID and every client's keys in
// order, so no one picks the graph.
//
// The hash input is "califusion/secagg/v1 roster", then the round, the roster size and each key
// with 4-byte big-endian length prefixes.
func RosterSeed(round []byte, roster []Keys) [32]byte {
	h := sha256.New()
	h.Write([]byte("califusion/secagg/v1 roster"))
	var l [4]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint32(l[:], uint32(len(b)))
		h.Write(l[:])
		h.Write(b)
	}
	put(round)
	binary.BigEndian.PutUint32(l[:], uint32(len(roster)))
	h.Write(l[:])
	for _, k := range roster {
		put(k.Seal)
		put(k.Mask)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
