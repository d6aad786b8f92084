// Package catalog is /califusion/catalog/3.0.0, the request/response protocol with which a node
// fills its model catalog from a connected peer: a late joiner reads what came before it, and
// every node re-reads peers now and then to catch announcements gossip missed. Manifests verify
// themselves (publisher signature, ModelID = SHA-256 of the bytes), so the serving peer need not
// be trusted. A node admits a listed version only once its parent is in its catalog (the
// listing comes in the order the server added models, so parents come first) and bounds what it
// admits from one peer in one sync. Version 3.0.0: manifests may name a lineage's coordinators,
// which 2.0.0 nodes refuse.
//
// Wire: each exchange is one stream. The client sends one Request frame; the server answers with
// Entry frames and a final Entry with Done set. A request without Want lists the IDs of the
// models the server added since a time (IDs only: re-reads cost 37 bytes a known model); a
// request with Want gets those models' signed manifests. Frames are protocols/wire frames.
package catalog

import (
	"errors"
	"fmt"
	"time"
)

// ID is the protocol ID.
const ID = "/califusion/catalog/3.0.0"

// ServiceName is the resource-manager service every accepted catalog stream is attached to.
const ServiceName = "califusion.catalog"

// Limits of the protocol.
const (
	MaxManifestSize = 64 << 10 // one signed manifest
	MaxIDs          = 1 << 16  // IDs in one listing; a longer catalog is paged (More)
	MaxWant         = 256      // manifests asked for in one request
	MaxRequestSize  = 16 << 10
	// StreamTimeout bounds one exchange (one stream), on the server and the client.
	StreamTimeout = 30 * time.Second
)

// Request rate a server should allow one peer (through ServerConfig.Allow): RequestBurst streams
// at once, then one every RequestEvery. An honest node reads a
// peer's catalog on connecting and then every few seconds at most, each sync opening one listing
// stream and one stream per MaxWant manifests it lacks (at most a dozen while it catches up), so
// only a peer that hammers the server meets the limit.
const (
	RequestBurst = 32
	RequestEvery = 250 * time.Millisecond
)

// Sentinel errors.
var (
	ErrTooMany    = errors.New("catalog answer has too many entries")
	ErrBadRequest = errors.New("bad catalog request")
	ErrBadAnswer  = errors.New("bad catalog answer")
	// ErrEnough, returned by a Sync accept function, ends the sync early (the client admitted as
	// much from this peer as it will in one sync); Sync returns it wrapped.
	ErrEnough = errors.New("catalog sync bound reached")
)

// Request asks for the IDs the peer added since a time (Want empty), or for the signed manifests
// of the models in Want.
type Request struct {
	Limit uint32   `cbor:"1,keyasint"`           // listing: at most this many IDs (0: MaxIDs)
	Since int64    `cbor:"2,keyasint,omitempty"` // listing: unix milliseconds, by the server's clock; 0: everything
	Want  [][]byte `cbor:"3,keyasint,omitempty"` // ModelIDs (32 bytes each), at most MaxWant
}

func (r *Request) validate() error {
	if len(r.Want) > MaxWant {
		return fmt.Errorf("%w: %d manifests wanted, at most %d", ErrBadRequest, len(r.Want), MaxWant)
	}
	for _, id := range r.Want {
		if len(id) != 32 {
			return fmt.Errorf("%w: a wanted ModelID of %d bytes", ErrBadRequest, len(id))
		}
	}
	if r.Since < 0 {
		return fmt.Errorf("%w: negative since", ErrBadRequest)
	}
	return nil
}

// Entry carries one ModelID (in a listing) or one signed manifest, or ends the answer. The final
// entry of a listing carries the server's clock when it began reading its catalog, which the
// client sends back as Since next time (so clocks that differ between peers lose nothing); when
// the listing was cut at its limit, More is set and Now is where the next page starts.
type Entry struct {
	Manifest []byte `cbor:"1,keyasint,omitempty"`
	Done     bool   `cbor:"2,keyasint,omitempty"`
	Now      int64  `cbor:"3,keyasint,omitempty"` // unix milliseconds, on the final entry
	ID       []byte `cbor:"4,keyasint,omitempty"`
	More     bool   `cbor:"5,keyasint,omitempty"`
}
