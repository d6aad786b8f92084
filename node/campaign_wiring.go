package node

import (
	"sync/atomic"

	"github.com/califusion/califusion/node/campaign"
	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/libp2p/go-libp2p/core/peer"
)

// laterCampaigns is the campaign service as the rounds service sees it: what the campaigns paid
// a round's contributors (for the reports it gives trainers), and the rounds it re-opens for a
// silent coordinator (whose campaigns it adopts). The rounds service is built before the
// campaign service, so the campaign service is set once it exists; until then, and on a node
// that runs no campaigns, no reward is told and nobody hears of a re-opening (the campaign
// service's Start adopts those it missed).
type laterCampaigns struct {
	svc atomic.Pointer[campaign.Service]
}

var (
	_ rounds.Rewards   = (*laterCampaigns)(nil)
	_ rounds.Campaigns = (*laterCampaigns)(nil)
)

// RewardFor asks the campaign service, once set.
func (l *laterCampaigns) RewardFor(round string, trainer peer.ID) (rounds.Reward, bool) {
	s := l.svc.Load()
	if s == nil {
		return rounds.Reward{}, false
	}
	return s.RewardFor(round, trainer)
}

// Reopened tells the campaign service, once set.
func (l *laterCampaigns) Reopened(r announce.Round) {
	if s := l.svc.Load(); s != nil {
		s.Reopened(r)
	}
}
