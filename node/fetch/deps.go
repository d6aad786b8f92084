package fetch

import (
	"context"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/jobs"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Catalog is what the fetch service needs of the model catalog (*catalog.Service implements it).
type Catalog interface {
	// Get returns a verified catalog entry; an unknown model's error wraps store.ErrNotFound.
	Get(id content.ModelID) (*catalog.Record, error)
	// Resolve returns a catalog entry, asking the network for a model the catalog does not
	// have; a model nobody knows is an *apierr.Error with code NotFound.
	Resolve(ctx context.Context, id content.ModelID) (*catalog.Record, error)
	// Providers finds peers that serve model id (never this node).
	Providers(ctx context.Context, id content.ModelID) []peer.ID
	// ProvidersStream sends model id's providers as they are found (never this node), and
	// closes when the search ends or ctx does.
	ProvidersStream(ctx context.Context, id content.ModelID) <-chan peer.ID
	// Provide announces in the DHT that this node serves the given models.
	Provide(ids ...content.ModelID)
}

// Anchoring is what the fetch service needs of Calimero anchoring (*anchoring.Service
// implements it). States are protocols/calimero's State* constants.
type Anchoring interface {
	// Required reports whether the anchoring policy is "require": nothing is fetched before its
	// anchor verifies.
	Required() bool
	// Check reads the anchor of id afresh and verifies it is exactly signed.
	Check(ctx context.Context, id content.ModelID, signed []byte) (string, error)
	// WaitVerified polls until id's anchor verifies, failing at once on an invalid anchor and
	// after wait on a missing one.
	WaitVerified(ctx context.Context, id content.ModelID, signed []byte, wait time.Duration) error
}

// Keys is what the fetch service needs of the keyring (*keys.Keyring implements it).
type Keys interface {
	// Get returns model id's content key, or an error when this node does not hold it.
	Get(id content.ModelID) (content.Key, error)
}

// Jobs runs fetches as persisted, resumable jobs (*jobs.Manager implements it).
type Jobs interface {
	Start(kind, subject, resumeID string, fn jobs.Func) (string, error)
	Status(id string) (jobs.Status, error)
	Unfinished() ([]jobs.Status, error)
}

var _ Jobs = (*jobs.Manager)(nil)
