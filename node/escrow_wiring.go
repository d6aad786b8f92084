package node

import (
	"sync/atomic"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/keys"
	"github.com/califusion/califusion/node/rounds"
	"github.com/libp2p/go-libp2p/core/peer"
)

// laterRounds tells the keys service which coordinator runs a round on which version (a
// coordinator of a threshold lineage releases its key share to a fellow coordinator only while
// it does). The keys service starts before the rounds service, so the rounds service is set
// once it exists; until then every answer is no.
type laterRounds struct {
	svc atomic.Pointer[rounds.Service]
}

var _ keys.Rounds = (*laterRounds)(nil)

// Runs asks the rounds service, once set.
func (l *laterRounds) Runs(model content.ModelID, coordinator peer.ID) bool {
	s := l.svc.Load()
	return s != nil && s.Runs(model, coordinator)
}
