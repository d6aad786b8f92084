package content

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"time"
	"unicode/utf8"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Limits on manifests.
const (
	MaxSignedManifestSize = 64 << 10
	MaxNameLen            = 200
	MaxDescriptionLen     = 4096
	MaxCoordinators       = 16 // coordinators one lineage root may name
	ManifestVersion       = 1
	signContext           = "califusion/manifest/v1"
	maxPeerIDLen          = 64 // bytes of one named coordinator (Ed25519 peer IDs are 38)

	// MaxModelSize is the largest model (plaintext bytes) a manifest may describe: 1 TiB. A
	// signed manifest is small whatever size it claims, and a node sizes its bookkeeping of a
	// model (chunk bitmap, leaf list, missing list) from the claim.
	MaxModelSize = 1 << 40
	// MaxChunks is the most chunks a manifest may describe (1 Mi). A node keeps a model's leaf
	// list (32 bytes a chunk: 32 MiB here) as one store value, which badger caps at its value-log
	// file size (64 MiB), and a fetch holds it in memory; a model larger than MaxChunks × its
	// chunk size needs larger chunks (1 TiB needs 1 MiB, the default chunk size).
	MaxChunks = 1 << 20
)

// Errors of manifest verification.
var (
	ErrManifest  = errors.New("invalid manifest")
	ErrSignature = errors.New("manifest signature does not verify")
)

// ModelID is the SHA-256 of a signed manifest's bytes.
type ModelID [32]byte

// Account is an ICRC-1 account.
type Account struct {
	Owner      string `cbor:"1,keyasint"`           // principal, textual form
	Subaccount []byte `cbor:"2,keyasint,omitempty"` // 32 bytes, or absent for the default
}

// Manifest describes one model version.
type Manifest struct {
	Version       uint64  `cbor:"1,keyasint"`
	Name          string  `cbor:"2,keyasint"`
	Description   string  `cbor:"3,keyasint,omitempty"`
	Size          uint64  `cbor:"4,keyasint"`
	ChunkSize     uint64  `cbor:"5,keyasint"`
	Chunks        uint64  `cbor:"6,keyasint"`
	Root          []byte  `cbor:"7,keyasint"`
	KeyCommitment []byte  `cbor:"8,keyasint"`
	Salt          []byte  `cbor:"9,keyasint"`
	Price         string  `cbor:"10,keyasint"` // base units, decimal
	Payee         Account `cbor:"11,keyasint"`
	Publisher     []byte  `cbor:"12,keyasint"`           // peer ID bytes
	CreatedAt     int64   `cbor:"13,keyasint"`           // unix milliseconds
	Parent        []byte  `cbor:"14,keyasint,omitempty"` // ModelID of the previous version
	Lineage       []byte  `cbor:"15,keyasint,omitempty"` // ModelID of the first version; absent on it
	// Coordinators, on a lineage's first version only, are the peer IDs (bytes) that the root
	// authorises to hold its key, run its rounds and sign its later versions, beside its
	// publisher. Receivers derive a version's lineage from verified parents and check its signer
	// against its root's list; they never take Lineage on trust.
	Coordinators [][]byte `cbor:"16,keyasint,omitempty"`
	// Threshold t ≥ 2 makes the version's key escrow t-of-n: each share holder (ShareHolderIDs)
	// keeps one Shamir share of the key and any t of them rebuild it. 0 or 1: each coordinator
	// holds the whole key. On a lineage root it is the lineage's threshold (t ≤ its
	// coordinators); a later version repeats the threshold its shares were split for.
	Threshold uint `cbor:"17,keyasint,omitempty"`
	// ShareCommitments, on every version with Threshold ≥ 2, commit to the share of each holder
	// in ShareHolderIDs order: SHA-256("califusion/keyshare/v1" ‖ Salt ‖ x ‖ Y), x = index + 1
	// (ShareCommitment), binding a share to one version and one holder.
	ShareCommitments [][]byte `cbor:"18,keyasint,omitempty"`
	// ShareHolders, on a later version with Threshold ≥ 2, are the lineage coordinators (peer ID
	// bytes) holding its shares, in commitment order: the lineage's coordinator set when it was
	// published. A root's holders are its Coordinators, so a root carries none.
	ShareHolders [][]byte `cbor:"19,keyasint,omitempty"`
}

// signed is the wire form: the manifest's canonical CBOR and the publisher's signature over
// signContext ‖ body.
type signed struct {
	Body      []byte `cbor:"1,keyasint"`
	Signature []byte `cbor:"2,keyasint"`
}

// ChunkCount returns the number of chunks of a size-byte model cut into chunkSize chunks.
func ChunkCount(size, chunkSize uint64) uint64 {
	if size == 0 {
		return 0
	}
	return (size-1)/chunkSize + 1
}

// MinChunkSizeFor returns the smallest chunk size (at least MinChunkSize) that cuts a size-byte
// model into at most MaxChunks chunks. It exceeds MaxChunkSize only for sizes beyond MaxModelSize.
func MinChunkSizeFor(size uint64) uint64 {
	if size == 0 {
		return MinChunkSize
	}
	return max(MinChunkSize, (size-1)/MaxChunks+1)
}

// CheckSize returns an error (ErrManifest) when a size-byte model cut into chunkSize chunks
// exceeds MaxModelSize or MaxChunks: what a publisher checks before packaging a file.
func CheckSize(size, chunkSize uint64) error {
	if size > MaxModelSize {
		return fmt.Errorf("%w: %d bytes exceeds the largest model, %d bytes (1 TiB)", ErrManifest, size, uint64(MaxModelSize))
	}
	if chunkSize > 0 {
		if n := ChunkCount(size, chunkSize); n > MaxChunks {
			return fmt.Errorf("%w: %d bytes in %d-byte chunks makes %d chunks, at most %d: use chunks of at least %d bytes", ErrManifest, size, chunkSize, n, MaxChunks, MinChunkSizeFor(size))
		}
	}
	return nil
}

// PlainLen returns the plaintext length of chunk i.
func (m *Manifest) PlainLen(i uint64) uint64 {
	if i+1 == m.Chunks {
		return m.Size - i*m.ChunkSize
	}
	return m.ChunkSize
}

// PublisherID returns the publisher's peer ID.
func (m *Manifest) PublisherID() (peer.ID, error) { return peer.IDFromBytes(m.Publisher) }

// Created returns CreatedAt as a time.
func (m *Manifest) Created() time.Time { return time.UnixMilli(m.CreatedAt).UTC() }

// PriceInt returns the price as an integer.
func (m *Manifest) PriceInt() *big.Int {
	p, _ := new(big.Int).SetString(m.Price, 10) // checked by validate
	return p
}

// IsRoot reports whether m is the first version of its lineage (it names no parent).
func (m *Manifest) IsRoot() bool { return len(m.Parent) == 0 }

// CoordinatorIDs returns the coordinators a lineage root names (validated on Open and Sign).
func (m *Manifest) CoordinatorIDs() []peer.ID {
	out := make([]peer.ID, 0, len(m.Coordinators))
	for _, b := range m.Coordinators {
		if id, err := peer.IDFromBytes(b); err == nil {
			out = append(out, id)
		}
	}
	return out
}

// Names reports whether the lineage root m names p among its coordinators.
func (m *Manifest) Names(p peer.ID) bool {
	for _, b := range m.Coordinators {
		if string(b) == string(p) {
			return true
		}
	}
	return false
}

// Authorises reports whether the lineage root m lets p sign its later versions and run its
// rounds: its publisher always, and the coordinators it names.
func (m *Manifest) Authorises(p peer.ID) bool {
	return string(m.Publisher) == string(p) || m.Names(p)
}

// PublisherOf returns the publisher a signed manifest claims, WITHOUT verifying the manifest:
// only for counting what is already stored (a quota), never for a decision about trust.
func PublisherOf(b []byte) (peer.ID, error) {
	var s signed
	if err := wire.Unmarshal(b, &s); err != nil {
		return "", fmt.Errorf("%w: %v", ErrManifest, err)
	}
	var m Manifest
	if err := wire.Unmarshal(s.Body, &m); err != nil {
		return "", fmt.Errorf("%w: %v", ErrManifest, err)
	}
	return m.PublisherID()
}

// Sign encodes m canonically, signs it with key, and returns the signed bytes and the ModelID.
// The publisher field is set from key.
func Sign(m *Manifest, key crypto.PrivKey) ([]byte, ModelID, error) {
	pid, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, ModelID{}, err
	}
	m.Version = ManifestVersion
	m.Publisher = []byte(pid)
	if err := m.validate(); err != nil {
		return nil, ModelID{}, err
	}
	body, err := wire.Marshal(m)
	if err != nil {
		return nil, ModelID{}, fmt.Errorf("encode manifest: %w", err)
	}
	sig, err := key.Sign(append([]byte(signContext), body...))
	if err != nil {
		return nil, ModelID{}, fmt.Errorf("sign manifest: %w", err)
	}
	out, err := wire.Marshal(signed{Body: body, Signature: sig})
	if err != nil {
		return nil, ModelID{}, err
	}
	if len(out) > MaxSignedManifestSize {
		return nil, ModelID{}, fmt.Errorf("%w: %d bytes exceeds %d", ErrManifest, len(out), MaxSignedManifestSize)
	}
	return out, sha256.Sum256(out), nil
}

// Open decodes and verifies signed manifest bytes: size, canonical encoding, field consistency
// and the publisher's signature. It returns the manifest and its ModelID.
func Open(b []byte) (*Manifest, ModelID, error) {
	if len(b) > MaxSignedManifestSize {
		return nil, ModelID{}, fmt.Errorf("%w: %d bytes exceeds %d", ErrManifest, len(b), MaxSignedManifestSize)
	}
	var s signed
	if err := wire.Unmarshal(b, &s); err != nil {
		return nil, ModelID{}, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	var m Manifest
	if err := wire.Unmarshal(s.Body, &m); err != nil {
		return nil, ModelID{}, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	// Only the canonical encoding is accepted, so one manifest has exactly one ModelID.
	if again, err := wire.Marshal(signed{Body: s.Body, Signature: s.Signature}); err != nil || string(again) != string(b) {
		return nil, ModelID{}, fmt.Errorf("%w: not canonical CBOR", ErrManifest)
	}
	if again, err := wire.Marshal(&m); err != nil || string(again) != string(s.Body) {
		return nil, ModelID{}, fmt.Errorf("%w: body is not canonical CBOR", ErrManifest)
	}
	if err := m.validate(); err != nil {
		return nil, ModelID{}, err
	}
	pid, err := m.PublisherID()
	if err != nil {
		return nil, ModelID{}, fmt.Errorf("%w: publisher: %v", ErrManifest, err)
	}
	pub, err := pid.ExtractPublicKey()
	if err != nil {
		return nil, ModelID{}, fmt.Errorf("%w: publisher key: %v", ErrManifest, err)
	}
	ok, err := pub.Verify(append([]byte(signContext), s.Body...), s.Signature)
	if err != nil || !ok {
		return nil, ModelID{}, ErrSignature
	}
	return &m, sha256.Sum256(b), nil
}

// checkPeerList checks a list of distinct peer IDs (what names the role in errors).
func checkPeerList(ids [][]byte, what string) error {
	seen := make(map[string]bool, len(ids))
	for i, b := range ids {
		if _, err := peer.IDFromBytes(b); err != nil || len(b) > maxPeerIDLen {
			return fmt.Errorf("%w: %s %d is not a peer ID", ErrManifest, what, i)
		}
		if seen[string(b)] {
			return fmt.Errorf("%w: %s %d is named twice", ErrManifest, what, i)
		}
		seen[string(b)] = true
	}
	return nil
}

func (m *Manifest) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrManifest, fmt.Sprintf(format, args...))
	}
	switch {
	case m.Version != ManifestVersion:
		return bad("version %d is not supported", m.Version)
	case m.Name == "" || len(m.Name) > MaxNameLen || !utf8.ValidString(m.Name):
		return bad("name must be 1..%d bytes of UTF-8", MaxNameLen)
	case len(m.Description) > MaxDescriptionLen || !utf8.ValidString(m.Description):
		return bad("description must be at most %d bytes of UTF-8", MaxDescriptionLen)
	case m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize:
		return bad("chunk size %d is outside %d..%d", m.ChunkSize, MinChunkSize, MaxChunkSize)
	case CheckSize(m.Size, m.ChunkSize) != nil:
		return CheckSize(m.Size, m.ChunkSize)
	case m.Chunks != ChunkCount(m.Size, m.ChunkSize):
		return bad("%d chunks disagree with size %d and chunk size %d", m.Chunks, m.Size, m.ChunkSize)
	case len(m.Root) != 32 || len(m.KeyCommitment) != 32 || len(m.Salt) != SaltSize:
		return bad("root, key commitment and salt must be 32, 32 and %d bytes", SaltSize)
	case len(m.Payee.Subaccount) != 0 && len(m.Payee.Subaccount) != 32:
		return bad("payee subaccount must be 32 bytes")
	case m.CreatedAt <= 0:
		return bad("created_at is missing")
	case len(m.Parent) != 0 && len(m.Parent) != 32, len(m.Lineage) != 0 && len(m.Lineage) != 32:
		return bad("parent and lineage must be 32-byte model IDs")
	case (len(m.Parent) == 0) != (len(m.Lineage) == 0):
		return bad("a model has both a parent and a lineage, or neither")
	case len(m.Coordinators) > MaxCoordinators:
		return bad("%d coordinators named, at most %d", len(m.Coordinators), MaxCoordinators)
	case len(m.Coordinators) > 0 && len(m.Parent) != 0:
		return bad("only a lineage's first version names coordinators")
	}
	if err := checkPeerList(m.Coordinators, "coordinator"); err != nil {
		return err
	}
	if err := m.validateShares(); err != nil {
		return err
	}
	if p, ok := new(big.Int).SetString(m.Price, 10); !ok || p.Sign() < 0 || p.String() != m.Price {
		return bad("price %q must be a non-negative integer of base units", m.Price)
	}
	if _, err := principal.Decode(m.Payee.Owner); err != nil {
		return bad("payee owner %q is not a principal", m.Payee.Owner)
	}
	return nil
}
