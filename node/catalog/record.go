package catalog

import (
	"math/big"
	"slices"

	"github.com/califusion/califusion/node/content"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Record is a catalog entry: a verified signed manifest and its derived lineage root.
type Record struct {
	ID       content.ModelID
	Manifest *content.Manifest
	Signed   []byte
	Source   string // how this node learnt it: published, gossip, catalog, resolve, anchor, escrow
	// Root is the first version of the lineage, derived from verified parents (the record itself
	// for a root), never read from the manifest's Lineage field. Every lineage decision (grants,
	// payment memo, price, payee, who may sign versions and run rounds) uses it.
	Root *Record
	// Coordination, on a root the catalog holds, is its lineage's coordinator update (nil: the
	// root's coordinators hold).
	Coordination *Coordination
}

// RootRecord returns r's derived root; a record built without one (never by the catalog) counts
// as its own root, which can claim nobody else's lineage.
func (r *Record) RootRecord() *Record {
	if r.Root == nil {
		return r
	}
	return r.Root
}

// Lineage returns the ModelID a payment for r binds to: its derived root's.
func (r *Record) Lineage() content.ModelID { return r.RootRecord().ID }

// Price returns what r's lineage costs: its root's price, whatever r's manifest says.
func (r *Record) Price() *big.Int { return r.RootRecord().Manifest.PriceInt() }

// Payee returns the account r's lineage is paid to: its root's payee.
func (r *Record) Payee() content.Account { return r.RootRecord().Manifest.Payee }

// Authorises reports whether r's lineage lets p sign versions and run rounds: p published the
// root or is a current coordinator of the lineage (CoordinatorSet).
func (r *Record) Authorises(p peer.ID) bool {
	return string(r.RootRecord().Manifest.Publisher) == string(p) || r.IsCoordinator(p)
}

// PublishedBy reports whether p published r or the root of its lineage: the publisher receives
// every version aggregated from its model without paying, and so does the authorised signer of a
// version.
func (r *Record) PublishedBy(p peer.ID) bool {
	if pub, err := r.Manifest.PublisherID(); err == nil && pub == p {
		return true
	}
	pub, err := r.RootRecord().Manifest.PublisherID()
	return err == nil && pub == p
}

// CoordinatorSet returns the current coordinators of r's lineage and its threshold (0 or 1: each
// holds the whole key): those of its latest coordinator update, else its root's.
func (r *Record) CoordinatorSet() ([]peer.ID, uint) {
	root := r.RootRecord()
	if u, _ := root.Coordination.Current(); u != nil {
		return u.CoordinatorIDs(), u.Threshold
	}
	return root.Manifest.CoordinatorIDs(), root.Manifest.Threshold
}

// IsCoordinator reports whether p is a current coordinator of r's lineage (not merely its
// publisher).
func (r *Record) IsCoordinator(p peer.ID) bool {
	ids, _ := r.CoordinatorSet()
	return slices.Contains(ids, p)
}

// ThresholdLineage reports whether r's lineage escrows keys t-of-n (threshold ≥ 2) now, or r
// itself is a threshold version: its coordinators then hold shares, never a whole key.
func (r *Record) ThresholdLineage() bool {
	_, t := r.CoordinatorSet()
	return t >= 2 || r.Manifest.IsThreshold() || r.RootRecord().Manifest.IsThreshold()
}
