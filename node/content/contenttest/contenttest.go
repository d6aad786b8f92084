// Package contenttest provides utilities for tests that need signed model manifests: a Signer (a
// fresh peer identity) and a Version (a description of a manifest), so the tests of the packages
// that admit, key or train on models can publish roots and children without packaging a file.
package contenttest

import (
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Signer is a peer identity that signs manifests in tests.
type Signer struct {
	Priv crypto.PrivKey
	ID   peer.ID
}

// NewSigner returns a Signer with a fresh Ed25519 key, failing t if none can be generated.
func NewSigner(t testing.TB) Signer {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(priv)
	return Signer{priv, id}
}

// Version describes a test manifest: a lineage root naming Coords, or (Parent set) a child of
// Parent claiming Lineage. Zero fields take defaults: Name "m", Price "1000", Payee "aaaaa-aa".
type Version struct {
	Name            string
	Price, Payee    string
	Parent, Lineage *content.ModelID // Lineage must be set when Parent is
	Coords          []peer.ID
	Key             content.Key // the key the manifest commits to
	// Plaintext, when set, is the model the manifest describes: its size and chunk count are the
	// plaintext's, its chunk root is the plaintext's SHA-256 and its salt is random. When nil the
	// manifest describes one chunk of one byte under a random root and a zero salt.
	Plaintext []byte
	// Threshold ≥ 2 splits Key t-of-n across the share holders (Coords for a root, Holders for a
	// child) and writes their share commitments; content.SplitKey(Key, salt, n, t) gives the
	// same shares again.
	Threshold uint
	Holders   []peer.ID
}

// Manifest returns the unsigned manifest v describes, created now. Two calls never return the
// same manifest: the root (or, with Plaintext, the salt) is random.
func Manifest(v Version) *content.Manifest {
	if v.Name == "" {
		v.Name = "m"
	}
	if v.Price == "" {
		v.Price = "1000"
	}
	if v.Payee == "" {
		v.Payee = "aaaaa-aa"
	}
	kc := v.Key.Commitment()
	m := &content.Manifest{Name: v.Name, Size: 1, ChunkSize: content.MinChunkSize, Chunks: 1, Root: make([]byte, 32),
		KeyCommitment: kc[:], Salt: make([]byte, content.SaltSize), Price: v.Price, Payee: content.Account{Owner: v.Payee},
		CreatedAt: time.Now().UnixMilli()}
	if v.Plaintext != nil {
		m.Size = uint64(len(v.Plaintext))
		m.Chunks = content.ChunkCount(m.Size, content.MinChunkSize)
		sum := sha256.Sum256(v.Plaintext)
		copy(m.Root, sum[:])
		rand.Read(m.Salt) // distinct manifests for the same content
	} else {
		rand.Read(m.Root) // distinct manifests
	}
	if v.Parent != nil {
		m.Parent, m.Lineage = v.Parent[:], v.Lineage[:]
	}
	for _, c := range v.Coords {
		m.Coordinators = append(m.Coordinators, []byte(c))
	}
	m.Threshold = v.Threshold
	if v.Threshold >= 2 {
		holders := v.Coords
		if v.Parent != nil {
			holders = v.Holders
			for _, h := range holders {
				m.ShareHolders = append(m.ShareHolders, []byte(h))
			}
		}
		if _, commits, err := content.SplitKey(v.Key, m.Salt, len(holders), int(v.Threshold)); err == nil {
			m.ShareCommitments = commits
		} // else Sign refuses the manifest: it has no commitments
	}
	return m
}

// Sign signs the manifest v describes with s's key and returns it with its ModelID, failing t if
// it cannot be signed.
func (s Signer) Sign(t testing.TB, v Version) ([]byte, content.ModelID) {
	t.Helper()
	signed, id, err := content.Sign(Manifest(v), s.Priv)
	if err != nil {
		t.Fatal(err)
	}
	return signed, id
}

// Signed is Sign without the ModelID: the signed manifest v describes.
func (s Signer) Signed(t testing.TB, v Version) []byte {
	t.Helper()
	signed, _ := s.Sign(t, v)
	return signed
}
