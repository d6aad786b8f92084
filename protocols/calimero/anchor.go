package calimero

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// AnchorPrefix is the kv-store key prefix of anchors.
const AnchorPrefix = "califusion/anchor/v1/"

// MaxAnchorSize caps a decoded anchor record.
const MaxAnchorSize = 64 << 10

// Anchor states (shared/API.md).
const (
	StateVerified = "verified"
	StateMissing  = "missing"
	StateInvalid  = "invalid"
	StateOff      = "off"
)

// ErrAnchorInvalid is returned for an anchor that is present but fails verification.
var ErrAnchorInvalid = errors.New("anchor fails verification")

// AnchorKey returns the kv-store key of record id.
func AnchorKey(id [32]byte) string { return AnchorPrefix + hex.EncodeToString(id[:]) }

// Anchors stores and verifies signed records in a context.
type Anchors struct{ c *Client }

// NewAnchors returns the anchor store of a client's context.
func NewAnchors(c *Client) *Anchors { return &Anchors{c: c} }

// Put anchors a signed record under the SHA-256 of its bytes and returns that ID.
func (a *Anchors) Put(ctx context.Context, record []byte) ([32]byte, error) {
	id := sha256.Sum256(record)
	if len(record) > MaxAnchorSize {
		return id, fmt.Errorf("anchor record of %d bytes exceeds %d", len(record), MaxAnchorSize)
	}
	return id, a.c.Set(ctx, AnchorKey(id), base64.StdEncoding.EncodeToString(record))
}

// DecodeAnchor checks a stored value against the ID it is stored under: it must be base64 of a
// record whose SHA-256 is id and that verify accepts (the record's own signature checks). Any
// member may overwrite any key, so readers always do this.
func DecodeAnchor(id [32]byte, value string, verify func(record []byte) error) ([]byte, error) {
	if base64.StdEncoding.DecodedLen(len(value)) > MaxAnchorSize {
		return nil, fmt.Errorf("%w: value too large", ErrAnchorInvalid)
	}
	record, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64: %v", ErrAnchorInvalid, err)
	}
	if sha256.Sum256(record) != id {
		return nil, fmt.Errorf("%w: value does not hash to its key (overwritten by another member?)", ErrAnchorInvalid)
	}
	if err := verify(record); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAnchorInvalid, err)
	}
	return record, nil
}

// Get reads and verifies the anchor of id. The state is verified, missing or invalid; err is set
// for invalid anchors (the reason) and for failures to read at all (state is then "").
func (a *Anchors) Get(ctx context.Context, id [32]byte, verify func(record []byte) error) ([]byte, string, error) {
	value, ok, err := a.c.Get(ctx, AnchorKey(id))
	if err != nil {
		return nil, "", err
	}
	if !ok {
		return nil, StateMissing, nil
	}
	record, err := DecodeAnchor(id, value, verify)
	if err != nil {
		return nil, StateInvalid, err
	}
	return record, StateVerified, nil
}

// List returns every valid anchored record; invalid ones are skipped and counted.
func (a *Anchors) List(ctx context.Context, verify func(record []byte) error) (records [][]byte, invalid int, err error) {
	all, err := a.c.Entries(ctx)
	if err != nil {
		return nil, 0, err
	}
	for k, v := range all {
		hexID, ok := strings.CutPrefix(k, AnchorPrefix)
		if !ok {
			continue
		}
		raw, err := hex.DecodeString(hexID)
		if err != nil || len(raw) != 32 {
			invalid++
			continue
		}
		rec, err := DecodeAnchor([32]byte(raw), v, verify)
		if err != nil {
			invalid++
			continue
		}
		records = append(records, rec)
	}
	return records, invalid, nil
}
