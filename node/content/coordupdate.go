package content

import (
	"errors"
	"fmt"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Limits and context of coordinator updates.
const (
	MaxCoordinatorUpdateSize = 8 << 10
	coordUpdateContext       = "califusion/coordinators/v1"
)

// ErrCoordinatorUpdate says a coordinator update does not verify.
var ErrCoordinatorUpdate = errors.New("invalid coordinator update")

// CoordinatorUpdate is a lineage publisher's signed change of its lineage's coordinators: from
// the update on, they hold the keys (or key shares, Threshold ≥ 2) of the versions published,
// run its rounds and sign its versions. Of a lineage's updates the highest Seq holds.
type CoordinatorUpdate struct {
	Lineage      []byte   `cbor:"1,keyasint"` // ModelID of the lineage root
	Seq          uint64   `cbor:"2,keyasint"` // 1, 2, …: the highest holds
	Coordinators [][]byte `cbor:"3,keyasint"` // peer ID bytes
	Threshold    uint     `cbor:"4,keyasint,omitempty"`
	CreatedAt    int64    `cbor:"5,keyasint"` // unix milliseconds
}

// CoordinatorIDs returns the update's coordinators (validated on Open and Sign).
func (u *CoordinatorUpdate) CoordinatorIDs() []peer.ID {
	out := make([]peer.ID, 0, len(u.Coordinators))
	for _, b := range u.Coordinators {
		if id, err := peer.IDFromBytes(b); err == nil {
			out = append(out, id)
		}
	}
	return out
}

func (u *CoordinatorUpdate) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCoordinatorUpdate, fmt.Sprintf(format, args...))
	}
	switch {
	case len(u.Lineage) != 32:
		return bad("lineage must be a 32-byte model ID")
	case u.Seq == 0:
		return bad("seq starts at 1")
	case u.CreatedAt <= 0:
		return bad("created_at is missing")
	case len(u.Coordinators) > MaxCoordinators:
		return bad("%d coordinators named, at most %d", len(u.Coordinators), MaxCoordinators)
	case u.Threshold >= 2 && int(u.Threshold) > len(u.Coordinators):
		return bad("threshold %d exceeds the %d coordinators named", u.Threshold, len(u.Coordinators))
	}
	if err := checkPeerList(u.Coordinators, "coordinator"); err != nil {
		return fmt.Errorf("%w: %v", ErrCoordinatorUpdate, err)
	}
	return nil
}

// SignCoordinatorUpdate encodes u canonically and signs it with key (the lineage root's
// publisher's).
func SignCoordinatorUpdate(u *CoordinatorUpdate, key crypto.PrivKey) ([]byte, error) {
	if err := u.validate(); err != nil {
		return nil, err
	}
	body, err := wire.Marshal(u)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(append([]byte(coordUpdateContext), body...))
	if err != nil {
		return nil, err
	}
	return wire.Marshal(signed{Body: body, Signature: sig})
}

// CoordinatorUpdateLineage returns the lineage an update claims, WITHOUT verifying it: to find
// the root whose publisher must have signed it (OpenCoordinatorUpdate).
func CoordinatorUpdateLineage(b []byte) (ModelID, error) {
	u, _, err := decodeCoordinatorUpdate(b)
	if err != nil {
		return ModelID{}, err
	}
	if len(u.Lineage) != 32 {
		return ModelID{}, fmt.Errorf("%w: lineage must be a 32-byte model ID", ErrCoordinatorUpdate)
	}
	return ModelID(u.Lineage), nil
}

func decodeCoordinatorUpdate(b []byte) (*CoordinatorUpdate, *signed, error) {
	if len(b) > MaxCoordinatorUpdateSize {
		return nil, nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrCoordinatorUpdate, len(b), MaxCoordinatorUpdateSize)
	}
	var s signed
	if err := wire.Unmarshal(b, &s); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCoordinatorUpdate, err)
	}
	var u CoordinatorUpdate
	if err := wire.Unmarshal(s.Body, &u); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCoordinatorUpdate, err)
	}
	if again, err := wire.Marshal(signed{Body: s.Body, Signature: s.Signature}); err != nil || string(again) != string(b) {
		return nil, nil, fmt.Errorf("%w: not canonical CBOR", ErrCoordinatorUpdate)
	}
	if again, err := wire.Marshal(&u); err != nil || string(again) != string(s.Body) {
		return nil, nil, fmt.Errorf("%w: body is not canonical CBOR", ErrCoordinatorUpdate)
	}
	return &u, &s, nil
}

// OpenCoordinatorUpdate decodes and verifies a signed update of the lineage whose root is root:
// size, canonical encoding, fields, that it names root, and root's publisher's signature.
func OpenCoordinatorUpdate(b []byte, rootID ModelID, root *Manifest) (*CoordinatorUpdate, error) {
	u, s, err := decodeCoordinatorUpdate(b)
	if err != nil {
		return nil, err
	}
	if err := u.validate(); err != nil {
		return nil, err
	}
	if ModelID(u.Lineage) != rootID || !root.IsRoot() {
		return nil, fmt.Errorf("%w: it names lineage %x, not %x", ErrCoordinatorUpdate, u.Lineage[:6], rootID[:6])
	}
	pid, err := root.PublisherID()
	if err != nil {
		return nil, fmt.Errorf("%w: root publisher: %v", ErrCoordinatorUpdate, err)
	}
	pub, err := pid.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: root publisher key: %v", ErrCoordinatorUpdate, err)
	}
	if ok, err := pub.Verify(append([]byte(coordUpdateContext), s.Body...), s.Signature); err != nil || !ok {
		return nil, fmt.Errorf("%w: not signed by the lineage's publisher %s", ErrCoordinatorUpdate, pid)
	}
	return u, nil
}
