package content

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes of the scheme.
const (
	KeySize          = 32
	SaltSize         = 16
	Overhead         = 16 // GCM tag
	DefaultChunkSize = 1 << 20
	MaxChunkSize     = 4 << 20
	MinChunkSize     = 4 << 10
)

// Errors of sealing and opening.
var (
	ErrDecrypt       = errors.New("chunk does not decrypt: wrong key, index, model or tampered bytes")
	ErrKeyCommitment = errors.New("key does not match the manifest's key commitment")
)

// Key is a model's content key.
type Key [KeySize]byte

// NewKey returns a fresh random content key.
func NewKey() (Key, error) {
	var k Key
	_, err := rand.Read(k[:])
	return k, err
}

// Commitment returns SHA-256("califusion/key/v1" ‖ K).
func (k Key) Commitment() [32]byte {
	h := sha256.New()
	h.Write([]byte("califusion/key/v1"))
	h.Write(k[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// CheckCommitment reports whether k matches commitment, in constant time.
func (k Key) CheckCommitment(commitment []byte) error {
	c := k.Commitment()
	if subtle.ConstantTimeCompare(c[:], commitment) != 1 {
		return ErrKeyCommitment
	}
	return nil
}

// Wipe zeroes the key.
func (k *Key) Wipe() { clear(k[:]) }

// Sealer seals and opens the chunks of one model.
type Sealer struct {
	aead  cipher.AEAD
	salt  [SaltSize]byte
	count uint64
}

// NewSealer returns a Sealer for a model of count chunks with salt.
func NewSealer(key Key, salt []byte, count uint64) (*Sealer, error) {
	if len(salt) != SaltSize {
		return nil, fmt.Errorf("salt is %d bytes, want %d", len(salt), SaltSize)
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s := &Sealer{aead: aead, count: count}
	copy(s.salt[:], salt)
	return s, nil
}

func (s *Sealer) nonceAAD(i uint64) (nonce [12]byte, aad [19 + SaltSize + 16]byte) {
	binary.BigEndian.PutUint64(nonce[4:], i)
	n := copy(aad[:], "califusion/chunk/v1")
	n += copy(aad[n:], s.salt[:])
	binary.BigEndian.PutUint64(aad[n:], i)
	binary.BigEndian.PutUint64(aad[n+8:], s.count)
	return
}

// Seal appends the ciphertext of plaintext chunk i to dst.
func (s *Sealer) Seal(dst []byte, i uint64, plain []byte) []byte {
	nonce, aad := s.nonceAAD(i)
	return s.aead.Seal(dst, nonce[:], plain, aad[:])
}

// Open appends the plaintext of ciphertext chunk i to dst.
func (s *Sealer) Open(dst []byte, i uint64, ct []byte) ([]byte, error) {
	if i >= s.count {
		return nil, fmt.Errorf("%w: index %d of %d", ErrDecrypt, i, s.count)
	}
	nonce, aad := s.nonceAAD(i)
	out, err := s.aead.Open(dst, nonce[:], ct, aad[:])
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}
