package calimero

import (
	"errors"
	"fmt"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Commitment kinds.
const (
	KindUpdate    = "update"
	KindAggregate = "aggregate"
	// KindRound commits to a round as it opened (its parameters), so another of the lineage's
	// coordinators can re-open it if its own dies.
	KindRound = "round"
	// KindMaskedInput commits to one trainer's masked input in a secure round (Hashes: the
	// SHA-256 of the masked vector's bytes).
	KindMaskedInput = "masked_input"
)

const commitmentContext = "califusion/commitment/v1"

// ErrCommitment is returned for a commitment record that does not decode or verify.
var ErrCommitment = errors.New("invalid commitment record")

// Commitment is what the coordinator anchors for an accepted update or an aggregate: enough for
// any member to check later that a given file was the one accepted in a round.
type Commitment struct {
	Kind      string   `cbor:"1,keyasint"`
	Round     string   `cbor:"2,keyasint"`
	Model     []byte   `cbor:"3,keyasint"`           // base ModelID of the round
	Hashes    [][]byte `cbor:"4,keyasint"`           // SHA-256 of the update or aggregate file(s)
	Samples   uint64   `cbor:"5,keyasint,omitempty"` // training samples behind an update
	Subject   []byte   `cbor:"6,keyasint,omitempty"` // the trainer's peer ID, for an update
	Signer    []byte   `cbor:"7,keyasint"`           // peer ID of the signer
	CreatedAt int64    `cbor:"8,keyasint"`           // unix milliseconds
	// Body is what a KindRound commitment commits to: the round as it opened (its encoded
	// announcement, at most MaxCommitmentBody bytes), so another coordinator can re-open it.
	Body []byte `cbor:"9,keyasint,omitempty"`
}

// MaxCommitmentBody bounds a commitment's Body.
const MaxCommitmentBody = 4 << 10

type signedCommitment struct {
	Body      []byte `cbor:"1,keyasint"`
	Signature []byte `cbor:"2,keyasint"`
}

func (c *Commitment) check() error {
	switch {
	case c.Kind != KindUpdate && c.Kind != KindAggregate && c.Kind != KindRound && c.Kind != KindMaskedInput:
		return fmt.Errorf("%w: kind %q", ErrCommitment, c.Kind)
	case c.Round == "" || len(c.Round) > 128:
		return fmt.Errorf("%w: round must be 1..128 bytes", ErrCommitment)
	case len(c.Model) != 32 || len(c.Hashes) == 0 || len(c.Hashes) > 64:
		return fmt.Errorf("%w: needs a 32-byte model and 1..64 hashes", ErrCommitment)
	case c.CreatedAt <= 0:
		return fmt.Errorf("%w: created_at is missing", ErrCommitment)
	case len(c.Body) > MaxCommitmentBody:
		return fmt.Errorf("%w: body of %d bytes exceeds %d", ErrCommitment, len(c.Body), MaxCommitmentBody)
	case c.Kind == KindRound && len(c.Body) == 0:
		return fmt.Errorf("%w: a round commitment needs the round's body", ErrCommitment)
	}
	for _, h := range c.Hashes {
		if len(h) != 32 {
			return fmt.Errorf("%w: hashes must be 32 bytes", ErrCommitment)
		}
	}
	return nil
}

// SignCommitment encodes c canonically, sets its signer from key, and signs it; the result is the
// anchor record (its SHA-256 is the anchor ID).
func SignCommitment(c *Commitment, key crypto.PrivKey) ([]byte, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	c.Signer = []byte(id)
	if err := c.check(); err != nil {
		return nil, err
	}
	body, err := wire.Marshal(c)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(append([]byte(commitmentContext), body...))
	if err != nil {
		return nil, err
	}
	return wire.Marshal(signedCommitment{Body: body, Signature: sig})
}

// OpenCommitment decodes a commitment record and verifies its signer's signature.
func OpenCommitment(b []byte) (*Commitment, error) {
	if len(b) > MaxAnchorSize {
		return nil, fmt.Errorf("%w: too large", ErrCommitment)
	}
	var s signedCommitment
	if err := wire.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCommitment, err)
	}
	var c Commitment
	if err := wire.Unmarshal(s.Body, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCommitment, err)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	signer, err := peer.IDFromBytes(c.Signer)
	if err != nil {
		return nil, fmt.Errorf("%w: signer: %v", ErrCommitment, err)
	}
	pub, err := signer.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: signer key: %v", ErrCommitment, err)
	}
	if ok, err := pub.Verify(append([]byte(commitmentContext), s.Body...), s.Signature); err != nil || !ok {
		return nil, fmt.Errorf("%w: signature does not verify", ErrCommitment)
	}
	return &c, nil
}
