package secagg

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Sizes of the protocol's secrets and boxes.
const (
	// SecretSize is the size of a self-mask seed, a mask secret key and so of every share's Y.
	SecretSize = 32
	// plainSize is a box's plaintext: X and Y of the self-mask seed's share, X and Y of the mask
	// key's share.
	plainSize = 2 * (1 + SecretSize)
	// SealedSize is the exact length of a Sealed box (plaintext and the AES-GCM tag).
	SealedSize = plainSize + 16
)

// Domain-separation labels.
const (
	labelMask   = "califusion/secagg/v1 mask"
	labelSeal   = "califusion/secagg/v1 seal"
	labelSealAD = "califusion/secagg/v1 sealed"
)

// pairInfo is an HKDF info string: label ‖ a ‖ b (4-byte big-endian each).
func pairInfo(label string, a, b int) string {
	buf := make([]byte, len(label)+8)
	copy(buf, label)
	binary.BigEndian.PutUint32(buf[len(label):], uint32(a))
	binary.BigEndian.PutUint32(buf[len(label)+4:], uint32(b))
	return string(buf)
}

// agree runs X25519 between a private key (32 bytes) and a peer's public key and derives a
// 32-byte key with HKDF-SHA256 (salt the round, info as given).
func agree(priv *ecdh.PrivateKey, peer []byte, round []byte, info string) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(peer)
	if err != nil {
		return nil, err
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, err
	}
	defer clear(shared)
	return hkdf.Key(sha256.New, shared, round, info, SecretSize)
}

// maskSeed is s_ij, the pairwise mask seed of clients i and j (symmetric).
func maskSeed(priv *ecdh.PrivateKey, peerMask []byte, round []byte, i, j int) ([]byte, error) {
	return agree(priv, peerMask, round, pairInfo(labelMask, min(i, j), max(i, j)))
}

// sealKey is the AEAD key of the box from → to.
func sealKey(priv *ecdh.PrivateKey, peerSeal []byte, round []byte, from, to int) ([]byte, error) {
	return agree(priv, peerSeal, round, pairInfo(labelSeal, from, to))
}

// sealAD is the additional data of the box from → to: the label, the round and both indices.
func sealAD(round []byte, from, to int) []byte {
	ad := make([]byte, 0, len(labelSealAD)+4+len(round)+8)
	ad = append(ad, labelSealAD...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(round)))
	ad = append(ad, round...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(from))
	ad = binary.BigEndian.AppendUint32(ad, uint32(to))
	return ad
}

// newGCM makes AES-256-GCM under key. Each key seals exactly one box (it is bound to the round
// and the ordered pair), so the nonce is fixed at zero.
func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("secagg: aes with a 32-byte key: " + err.Error()) // unreachable
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		panic("secagg: gcm: " + err.Error()) // unreachable
	}
	return g
}

// seal seals the plaintext of the box from → to under key.
func seal(key, plain, round []byte, from, to int) []byte {
	var nonce [12]byte
	return newGCM(key).Seal(nil, nonce[:], plain, sealAD(round, from, to))
}

// open opens a Sealed box under key: it checks the box's length and opens it with the round,
// From and To bound in. The caller checks From and To against who it expects.
func open(key []byte, round []byte, s Sealed) ([]byte, error) {
	if len(s.Box) != SealedSize {
		return nil, fmt.Errorf("%w: the box from client %d to client %d is %d bytes, want %d", ErrMessage, s.From, s.To, len(s.Box), SealedSize)
	}
	var nonce [12]byte
	plain, err := newGCM(key).Open(nil, nonce[:], s.Box, sealAD(round, s.From, s.To))
	if err != nil {
		return nil, fmt.Errorf("%w: the box from client %d to client %d does not open (tampered, or sealed for another round or pair)", ErrMessage, s.From, s.To)
	}
	return plain, nil
}

// prgChunk is how many coordinates addPRG expands per keystream call.
const prgChunk = 1024

// addPRG adds (or, if sub, subtracts) PRG(seed) to dst modulo 2^64: the AES-256-CTR keystream
// under seed (zero IV) read as little-endian uint64s, one per coordinate.
func addPRG(dst []uint64, seed []byte, sub bool) {
	block, err := aes.NewCipher(seed)
	if err != nil {
		panic("secagg: aes with a 32-byte key: " + err.Error()) // unreachable: seeds are 32 bytes
	}
	var iv [aes.BlockSize]byte
	ctr := cipher.NewCTR(block, iv[:])
	var zero, ks [prgChunk * 8]byte
	for len(dst) > 0 {
		m := min(len(dst), prgChunk)
		b := ks[:m*8]
		ctr.XORKeyStream(b, zero[:m*8])
		d := dst[:m]
		if sub {
			for i := range d {
				d[i] -= binary.LittleEndian.Uint64(b[8*i:])
			}
		} else {
			for i := range d {
				d[i] += binary.LittleEndian.Uint64(b[8*i:])
			}
		}
		dst = dst[m:]
	}
	clear(ks[:])
}
