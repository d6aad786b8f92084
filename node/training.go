package node

import (
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/anchoring"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/keys"
	"github.com/libp2p/go-libp2p/core/peer"
)

// startTraining turns the anchoring service's training contexts on (after the catalog, the
// keys service and the kex server exist) and, on a coordinator, answers invitations.
func (n *Node) startTraining() {
	n.anchoring.SetLog(n.log.With("subsys", "anchoring"))
	lin := catalogLineages{n.catalog}
	n.anchoring.EnableTraining(anchoring.TrainingDeps{
		Members: trainingMembers{lin, n.coordinator}, Lineages: lin, Coordinators: lin, Inviter: anchoring.KexInviter(n.host),
	})
	if n.cfg.HasRole(config.RoleCoordinator) && n.anchoring.TrainingOn() {
		n.anchoring.ServeInvites(n.kex)
	}
}

// catalogLineages answers anchoring's lineage questions from the catalog.
type catalogLineages struct{ c *catalog.Service }

// root returns the catalog record of lineage, which must be a lineage root.
func (l catalogLineages) root(lineage [32]byte) *catalog.Record {
	rec, err := l.c.Get(content.ModelID(lineage))
	if err != nil || rec.Lineage() != content.ModelID(lineage) {
		return nil
	}
	return rec
}

// LineageOf returns the lineage root of a model in the catalog.
func (l catalogLineages) LineageOf(model [32]byte) ([32]byte, bool) {
	rec, err := l.c.Get(content.ModelID(model))
	if err != nil {
		return [32]byte{}, false
	}
	return rec.Lineage(), true
}

// Authorises reports whether the lineage root lets p run its rounds.
func (l catalogLineages) Authorises(lineage [32]byte, p peer.ID) bool {
	rec := l.root(lineage)
	return rec != nil && rec.Authorises(p)
}

// trainingMembers lets the lineage's coordinators and, on a coordinator, the trainers the keys
// service counts as entitled (a grant for the lineage, or its publisher) into training contexts.
type trainingMembers struct {
	lin   catalogLineages
	coord *keys.Coordinator // nil unless this node is a coordinator
}

// MayJoin reports whether p may be invited into the lineage's training context.
func (m trainingMembers) MayJoin(lineage [32]byte, p peer.ID) bool {
	rec := m.lin.root(lineage)
	if rec == nil {
		return false
	}
	return rec.Authorises(p) || (m.coord != nil && m.coord.Entitled(rec, p))
}
