package storage

import (
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/fetch"
	"github.com/califusion/califusion/node/jobs"
	"github.com/multiformats/go-multihash"
)

// Catalog is what storage needs of the model catalog (*catalog.Service implements it).
type Catalog interface {
	// All lists the catalog's verified records.
	All() ([]*catalog.Record, error)
	// Get returns a verified record; an unknown model's error wraps store.ErrNotFound.
	Get(id content.ModelID) (*catalog.Record, error)
	// Forget removes a manifest; the parent of a known version is refused (catalog.ErrHasChildren).
	Forget(id content.ModelID) error
}

// Chunks is what storage needs of the chunk store (*fetch.ChunkStore implements it).
type Chunks interface {
	// Held counts the durably held chunks of a chunks-chunk model without opening its blob.
	Held(id [32]byte, chunks uint64) uint64
	// DiskBytes is the size of a model's blob file (0 when there is none).
	DiskBytes(id [32]byte) uint64
	// Usage is the size of every blob file together.
	Usage() (uint64, error)
	// Remove drops a model's blob, have-bitmap and leaf list.
	Remove(id [32]byte) error
}

// Jobs tells whether a fetch is running (*jobs.Manager implements it).
type Jobs interface {
	Running(kind, subject string) (string, bool)
}

// Rounds lists the base models of the open rounds this node coordinates (*rounds.Service
// implements it).
type Rounds interface {
	OpenBases() []content.ModelID
}

// Provider stops the DHT reproviding a key (kad-dht's *provider.SweepingProvider implements it).
type Provider interface {
	StopProviding(keys ...multihash.Multihash) error
}

// Keys tells whether this node holds a model's content key (*keys.Keyring implements it).
type Keys interface {
	Has(id content.ModelID) bool
}

var (
	_ Catalog = (*catalog.Service)(nil)
	_ Chunks  = (*fetch.ChunkStore)(nil)
	_ Jobs    = (*jobs.Manager)(nil)
)
