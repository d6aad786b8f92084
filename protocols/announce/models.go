package announce

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/califusion/califusion/protocols/wire"
)

// ModelsTopic carries model announcements: a publisher's new model, or a node that now seeds one.
// Version 2: manifests may name a lineage's coordinators (field 16), which nodes of version 1
// refuse as unknown fields. Receivers rate-limit announcements per author and derive every
// version's lineage from its verified parent before storing it (node/catalog).
const ModelsTopic = "califusion/models/2"

// MaxManifestSize caps a signed manifest inside an announcement.
const MaxManifestSize = 64 << 10

// MaxModelAnnounceSize caps an encoded ModelAnnounce.
const MaxModelAnnounceSize = MaxManifestSize + 128

// Errors of the model validator beyond ErrTooLarge and ErrMalformed.
var (
	ErrMisHashed   = errors.New("model ID is not the hash of the manifest")
	ErrBadManifest = errors.New("manifest fails verification")
)

// ModelAnnounce announces a model by its signed manifest. The ModelID is repeated so that a
// mis-addressed announcement is rejected before the manifest is parsed.
type ModelAnnounce struct {
	ModelID  []byte `cbor:"1,keyasint"`
	Manifest []byte `cbor:"2,keyasint"`
}

// NewModelAnnounce builds the announcement of a signed manifest.
func NewModelAnnounce(signedManifest []byte) *ModelAnnounce {
	id := sha256.Sum256(signedManifest)
	return &ModelAnnounce{ModelID: id[:], Manifest: signedManifest}
}

// Encode returns the wire form of a.
func (a *ModelAnnounce) Encode() ([]byte, error) {
	b, err := wire.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode model announcement: %w", err)
	}
	if len(b) > MaxModelAnnounceSize {
		return nil, fmt.Errorf("encode model announcement: %d bytes: %w", len(b), ErrTooLarge)
	}
	return b, nil
}

// DecodeModelAnnounce parses an announcement, checks that its ModelID is the SHA-256 of the
// manifest, and runs verify (the manifest's own signature and consistency checks) on it.
func DecodeModelAnnounce(b []byte, verify func(signedManifest []byte) error) (*ModelAnnounce, error) {
	if len(b) > MaxModelAnnounceSize {
		return nil, fmt.Errorf("model announcement of %d bytes: %w", len(b), ErrTooLarge)
	}
	var a ModelAnnounce
	if err := wire.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%w: model announcement: %v", ErrMalformed, err)
	}
	if len(a.ModelID) != sha256.Size || len(a.Manifest) == 0 {
		return nil, fmt.Errorf("%w: model announcement needs a 32-byte model ID and a manifest", ErrMalformed)
	}
	if len(a.Manifest) > MaxManifestSize {
		return nil, fmt.Errorf("manifest of %d bytes: %w", len(a.Manifest), ErrTooLarge)
	}
	if sum := sha256.Sum256(a.Manifest); !bytes.Equal(sum[:], a.ModelID) {
		return nil, ErrMisHashed
	}
	if err := verify(a.Manifest); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	return &a, nil
}
