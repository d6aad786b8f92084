package store

import "time"

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
