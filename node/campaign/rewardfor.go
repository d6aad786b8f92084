package campaign

import (
	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

var _ rounds.Rewards = (*Service)(nil)

// RewardFor returns the reward this coordinator paid trainer for round, once the payment is done
// (its block known): what the rounds service tells the trainer in its report, which the trainer
// then checks on the ledger. A reward still being paid, one that could not be paid, or none: false.
func (s *Service) RewardFor(round string, trainer peer.ID) (rounds.Reward, bool) {
	if s.ledger == nil {
		return rounds.Reward{}, false
	}
	var p Payout
	if err := s.store.Get(store.PayoutKey(round, trainer.String()), &p); err != nil || !p.Done {
		return rounds.Reward{}, false
	}
	lc, err := s.ledger.Client()
	if err != nil {
		return rounds.Reward{}, false
	}
	return rounds.Reward{Amount: p.Amount, Block: p.Block, Payer: lc.Principal().Encode()}, true
}
