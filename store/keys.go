package store

import "time"

// Key is a store key in the schema documented in the package comment.
type Key []byte

// String returns the key as text, for errors and logs.
func (k Key) String() string { return string(k) }

// Namespaces of the key schema.
const (
	nsMeta     = "meta/"
	nsPeer     = "peer/"
	nsPresence = "presence/"
	nsJob      = "job/"
)

// MetaKey is the key of store metadata entry name.
func MetaKey(name string) Key { return Key(nsMeta + name) }

// PeerKey is the key of the PeerRecord of peer id.
func PeerKey(id string) Key { return Key(nsPeer + id) }

// PeerPrefix is the prefix of every PeerRecord.
func PeerPrefix() Key { return Key(nsPeer) }

// PresenceKey is the key of the Presence of peer id.
func PresenceKey(id string) Key { return Key(nsPresence + id) }

// PresencePrefix is the prefix of every Presence.
func PresencePrefix() Key { return Key(nsPresence) }

// JobKey is the key of the status of job id.
func JobKey(id string) Key { return Key(nsJob + id) }

// JobPrefix is the prefix of every job status.
func JobPrefix() Key { return Key(nsJob) }

// PeerRecord remembers how a peer was last reached, so a restarted node can reconnect without
// bootstrap peers.
type PeerRecord struct {
	Addrs    []string  `cbor:"1,keyasint"`
	LastSeen time.Time `cbor:"2,keyasint"`
}

// Presence is what a peer last announced about itself on the presence topic.
type Presence struct {
	Roles    []string  `cbor:"1,keyasint"`
	Version  string    `cbor:"2,keyasint"`
	Addrs    []string  `cbor:"3,keyasint"`
	SentAt   time.Time `cbor:"4,keyasint"`
	Received time.Time `cbor:"5,keyasint"`
}
