package anchoring

import (
	"context"

	"github.com/califusion/califusion/protocols/calimero"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Members decides who may be invited into a lineage's training context: trainers entitled to
// the lineage (they paid for it, or published it) and the lineage's coordinators. The node wires
// the keys service's entitlement check and the lineage root's coordinator list.
type Members interface {
	MayJoin(lineage [32]byte, p peer.ID) bool
}

// Lineages finds the lineage of a model this node knows: the ModelID of its derived lineage
// root (catalog.Record.Lineage). ok is false for a model the node does not know.
type Lineages interface {
	LineageOf(model [32]byte) (lineage [32]byte, ok bool)
}

// Coordinators reports whether a lineage's root lets p run its rounds (the root's publisher or a
// coordinator it names: catalog.Record.Authorises on the root). Training-context records and
// round commitments signed by anyone else are ignored.
type Coordinators interface {
	Authorises(lineage [32]byte, p peer.ID) bool
}

// Inviter asks a coordinator for an invitation into a lineage's training context (the
// calimero/invite/1 kex purpose; KexInviter). A refusal is an *apierr.Error with the
// coordinator's code.
type Inviter interface {
	RequestInvite(ctx context.Context, coordinator peer.ID, lineage [32]byte) (*calimero.InviteReply, error)
}

// TrainingDeps are what training contexts need from the rest of the node.
type TrainingDeps struct {
	Members      Members
	Lineages     Lineages
	Coordinators Coordinators
	Inviter      Inviter
}
