// Package announce defines CaliFusion's gossipsub topics, their messages, and the validators that
// keep malformed or oversized messages out of the mesh.
//
// Every message is deterministic CBOR. gossipsub runs with strict signing, so a message's author
// is its signed "from" peer; payloads never repeat it.
package announce

import (
	"errors"
	"fmt"
	"time"

	"github.com/califusion/califusion/protocols/wire"
)

// Topic names.
const (
	// PresenceTopic carries each node's roles and addresses, so nodes can find coordinators and
	// publishers without asking anyone.
	PresenceTopic = "califusion/presence/1"
)

// MaxPresenceSize caps an encoded Presence message.
const MaxPresenceSize = 4 << 10

// Sentinel errors of the validators.
var (
	ErrTooLarge  = errors.New("message too large")
	ErrMalformed = errors.New("malformed message")
)

// Presence is a node's periodic self-description on PresenceTopic.
type Presence struct {
	Roles   []string `cbor:"1,keyasint"`
	Version string   `cbor:"2,keyasint"`
	Addrs   []string `cbor:"3,keyasint"`
	SentAt  int64    `cbor:"4,keyasint"` // unix milliseconds
}

// Encode returns the wire form of p.
func (p *Presence) Encode() ([]byte, error) {
	b, err := wire.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode presence: %w", err)
	}
	if len(b) > MaxPresenceSize {
		return nil, fmt.Errorf("encode presence: %d bytes: %w", len(b), ErrTooLarge)
	}
	return b, nil
}

var knownRoles = map[string]bool{"publisher": true, "trainer": true, "coordinator": true}

// DecodePresence parses and checks a Presence message.
func DecodePresence(b []byte) (*Presence, error) {
	if len(b) > MaxPresenceSize {
		return nil, fmt.Errorf("presence of %d bytes: %w", len(b), ErrTooLarge)
	}
	var p Presence
	if err := wire.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: presence: %v", ErrMalformed, err)
	}
	if len(p.Roles) == 0 {
		return nil, fmt.Errorf("%w: presence names no role", ErrMalformed)
	}
	for _, r := range p.Roles {
		if !knownRoles[r] {
			return nil, fmt.Errorf("%w: presence names unknown role %q", ErrMalformed, r)
		}
	}
	if len(p.Version) > 64 {
		return nil, fmt.Errorf("%w: presence version string too long", ErrMalformed)
	}
	for _, a := range p.Addrs {
		if len(a) > 256 {
			return nil, fmt.Errorf("%w: presence address too long", ErrMalformed)
		}
	}
	if p.SentAt <= 0 {
		return nil, fmt.Errorf("%w: presence has no time", ErrMalformed)
	}
	return &p, nil
}

// SentTime returns SentAt as a time.
func (p *Presence) SentTime() time.Time { return time.UnixMilli(p.SentAt).UTC() }
