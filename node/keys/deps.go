package keys

import (
	"context"

	"github.com/califusion/califusion/node/anchoring"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/ledger"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Catalog is what the keys service uses of the model catalog (node/catalog's Service).
type Catalog interface {
	// Get returns the catalog entry of id (an error wrapping store.ErrNotFound when unknown).
	Get(id content.ModelID) (*catalog.Record, error)
	// Add admits a signed manifest whose lineage verifies; it reports whether it was new.
	// Refusals wrap errUnknownParent, errLineage or errQuota (node/catalog's sentinels).
	Add(signed []byte, source string) (*catalog.Record, bool, error)
	// All lists the catalog.
	All() ([]*catalog.Record, error)
	// SetCoordinators admits a signed coordinator update of a lineage in the catalog; refusals
	// wrap catalog.ErrUnknownLineage, catalog.ErrStaleUpdate or content.ErrCoordinatorUpdate.
	SetCoordinators(signed []byte) (*content.CoordinatorUpdate, bool, error)
}

// Ledger is what the keys service uses of the ICP ledger connection (node/ledger's Service).
type Ledger interface {
	// Client returns the connected ledger client; on failure an *apierr.Error Unavailable whose
	// Data is the cause.
	Client() (ledger.Ledger, error)
	// AllowVerify takes one payment verification from p's budget (coordinator).
	AllowVerify(p peer.ID) bool
	// CanisterID is the configured ledger canister (icp.ledger_canister_id).
	CanisterID() string
}

// Anchoring is what the keys service uses of the Calimero anchoring policy (node/anchoring's
// Service).
type Anchoring interface {
	// Required reports whether the policy is "require".
	Required() bool
	// Check reads id's anchor afresh and returns its state ("verified" when it verifies).
	Check(ctx context.Context, id content.ModelID, signed []byte) (string, error)
}

// Directory lists the coordinators this node knows of (from presence), itself first if it is one.
type Directory interface {
	Coordinators() []peer.ID
}

// Rounds is what the keys service asks of the rounds heard on gossip (node/rounds implements
// it): whether coordinator runs a round, open now, on version model.
type Rounds interface {
	Runs(model content.ModelID, coordinator peer.ID) bool
}

// The providers the node passes in.
var (
	_ Catalog   = (*catalog.Service)(nil)
	_ Ledger    = (*ledger.Service)(nil)
	_ Anchoring = (*anchoring.Service)(nil)
)
