// Package catalog is /califusion/catalog/1.0.0, the request/response protocol with which a node
// that joins late fills its model catalog from a connected peer. The peer streams the signed
// manifests it knows; they verify themselves (publisher signature, ModelID = SHA-256 of the
// bytes), so the serving peer need not be trusted.
//
// Wire: the client sends one Request frame; the server answers with Entry frames, one manifest
// each, and a final Entry with Done set. Frames are protocols/wire frames.
package catalog

import (
	"errors"
	"time"
)

// ID is the protocol ID.
const ID = "/califusion/catalog/1.0.0"

// Limits of the protocol.
const (
	MaxManifestSize = 64 << 10 // one signed manifest
	MaxEntries      = 4096     // manifests in one answer
	MaxRequestSize  = 256
	Timeout         = 30 * time.Second
)

// Sentinel errors.
var (
	ErrTooMany = errors.New("catalog answer has too many entries")
)

// Request asks for the peer's catalog, or the part of it the peer added since a time.
type Request struct {
	Limit uint32 `cbor:"1,keyasint"`           // 0: up to MaxEntries
	Since int64  `cbor:"2,keyasint,omitempty"` // unix milliseconds; 0: everything
}

// Entry carries one signed manifest, or ends the answer. The final entry carries the server's
// clock when it began reading its catalog, which the client sends back as Since next time (so
// clocks that differ between peers lose nothing).
type Entry struct {
	Manifest []byte `cbor:"1,keyasint,omitempty"`
	Done     bool   `cbor:"2,keyasint,omitempty"`
	Now      int64  `cbor:"3,keyasint,omitempty"` // unix milliseconds, on the final entry
}
