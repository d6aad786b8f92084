package content

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"math/bits"
)

// ErrLeaves is returned when a leaf list does not hash to the expected root.
var ErrLeaves = errors.New("leaf hashes do not match the Merkle root")

// Leaf hashes one ciphertext chunk: SHA-256(0x00 ‖ ct).
func Leaf(ct []byte) [32]byte {
	return leafWith(sha256.New(), ct)
}

func leafWith(h hash.Hash, ct []byte) [32]byte {
	h.Reset()
	h.Write([]byte{0})
	h.Write(ct)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Root computes the RFC 6962 Merkle tree hash of leaves (already leaf-hashed).
func Root(leaves [][32]byte) [32]byte {
	if len(leaves) == 0 {
		return sha256.Sum256(nil)
	}
	h := sha256.New()
	return mth(h, leaves)
}

func mth(h hash.Hash, leaves [][32]byte) [32]byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1 << (bits.Len(uint(len(leaves)-1)) - 1) // largest power of two < n
	l, r := mth(h, leaves[:k]), mth(h, leaves[k:])
	h.Reset()
	h.Write([]byte{1})
	h.Write(l[:])
	h.Write(r[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// CheckLeaves verifies that leaves has count entries and hashes to root.
func CheckLeaves(leaves [][32]byte, count uint64, root []byte) error {
	if uint64(len(leaves)) != count {
		return fmt.Errorf("%w: %d leaves for %d chunks", ErrLeaves, len(leaves), count)
	}
	got := Root(leaves)
	if subtle.ConstantTimeCompare(got[:], root) != 1 {
		return ErrLeaves
	}
	return nil
}

// LeavesFromBytes splits concatenated 32-byte hashes.
func LeavesFromBytes(b []byte) ([][32]byte, error) {
	if len(b)%32 != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a multiple of 32", ErrLeaves, len(b))
	}
	out := make([][32]byte, len(b)/32)
	for i := range out {
		copy(out[i][:], b[i*32:])
	}
	return out, nil
}

// LeavesToBytes concatenates leaf hashes.
func LeavesToBytes(leaves [][32]byte) []byte {
	out := make([]byte, 0, len(leaves)*32)
	for _, l := range leaves {
		out = append(out, l[:]...)
	}
	return out
}
