package node

import (
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/keys"
	"github.com/libp2p/go-libp2p/core/peer"
)

// keysRounds tells the keys service which coordinator runs a round on which version (a
// coordinator of a threshold lineage releases its key share to a fellow coordinator only while
// it does). It asks the rounds service once that implements keys.Rounds, and refuses until then
// (no rounds service yet, or one without Runs).
type keysRounds struct{ n *Node }

func (a keysRounds) Runs(model content.ModelID, coordinator peer.ID) bool {
	if a.n.rounds == nil {
		return false
	}
	r, ok := any(a.n.rounds).(keys.Rounds)
	return ok && r.Runs(model, coordinator)
}
