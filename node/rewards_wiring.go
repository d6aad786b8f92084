package node

import (
	"sync/atomic"

	"github.com/califusion/califusion/node/campaign"
	"github.com/califusion/califusion/node/rounds"
	"github.com/libp2p/go-libp2p/core/peer"
)

// laterRewards tells the rounds service what the campaigns paid a round's contributors (for the
// reports it gives trainers). The rounds service is built before the campaign service, so the
// campaign service is set once it exists; until then, and on a node that runs no campaigns,
// no reward is told.
type laterRewards struct {
	svc atomic.Pointer[campaign.Service]
}

var _ rounds.Rewards = (*laterRewards)(nil)

// RewardFor asks the campaign service, once set.
func (l *laterRewards) RewardFor(round string, trainer peer.ID) (rounds.Reward, bool) {
	s := l.svc.Load()
	if s == nil {
		return rounds.Reward{}, false
	}
	return s.RewardFor(round, trainer)
}
