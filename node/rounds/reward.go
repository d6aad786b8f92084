package rounds

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A campaign's coordinator pays each accepted contributor of a published round (node/campaign)
// and tells the trainer so in the answer to its report query (updates.Report.Reward). The
// trainer believes none of it: round_report shows the reward as verified only once the trainer's
// own ledger client found the named block to be a transfer of exactly that amount to the
// trainer's account, from the named payer, with the memo updates.RewardMemo(round, trainer).

// rewardCheckTimeout bounds a trainer's ledger check of a reward.
const rewardCheckTimeout = 30 * time.Second

// reportReward is the reward a coordinator tells trainer about round (nil: none paid yet, or
// this node pays no rewards).
func (s *Service) reportReward(round string, trainer peer.ID) *updates.Reward {
	if s.deps.Rewards == nil {
		return nil
	}
	rw, ok := s.deps.Rewards.RewardFor(round, trainer)
	if !ok {
		return nil
	}
	return &updates.Reward{Amount: rw.Amount, Block: rw.Block, Payer: rw.Payer}
}

// checkReward checks on the ledger the reward a coordinator says it paid this trainer for round
// (its form already passed updates.Report.Check), and returns it with the verdict: verified, or
// a warning that says what did not hold (also logged).
func (s *Service) checkReward(ctx context.Context, round string, rw *updates.Reward) *store.RewardRecord {
	rec := &store.RewardRecord{Amount: rw.Amount, Block: rw.Block, Payer: rw.Payer}
	warn := func(why string) *store.RewardRecord {
		rec.Warning = "the coordinator says it paid this reward, but " + why
		s.log.Warn("reward not verified on the ledger", "round", round, "block", rw.Block, "amount", rw.Amount, "payer", rw.Payer, "why", why)
		return rec
	}
	amount, ok := new(big.Int).SetString(rw.Amount, 10)
	if !ok || amount.Sign() <= 0 {
		return warn("its amount is not a positive whole number of base units")
	}
	if s.deps.Ledger == nil {
		return warn("this node has no ledger to check it on")
	}
	lc, err := s.deps.Ledger.Client()
	if err != nil {
		return warn(fmt.Sprintf("this node's ledger client is unavailable: %v", err))
	}
	vctx, cancel := context.WithTimeout(ctx, rewardCheckTimeout)
	defer cancel()
	if tok, ok := lc.CachedToken(); ok {
		rec.AmountTokens = tok.Format(amount)
	} else if tok, err := lc.Token(vctx); err == nil {
		rec.AmountTokens = tok.Format(amount)
	}
	payer, err := principal.Decode(rw.Payer)
	if err != nil {
		return warn(fmt.Sprintf("its payer %q is not a principal", rw.Payer))
	}
	pay, err := lc.VerifyPayment(vctx, rw.Block, icp.Expect{
		Payer: icp.Account{Owner: payer}, Payee: icp.Account{Owner: lc.Principal()}, MinAmount: amount,
		Memo: updates.RewardMemo(round, s.cfg.Self),
	})
	switch {
	case errors.Is(err, icp.ErrWrongPayee):
		return warn(fmt.Sprintf("ledger block %d pays another account than this node's", rw.Block))
	case errors.Is(err, icp.ErrWrongPayer):
		return warn(fmt.Sprintf("ledger block %d was not paid from %s", rw.Block, rw.Payer))
	case errors.Is(err, icp.ErrWrongMemo):
		return warn(fmt.Sprintf("ledger block %d carries another memo than this node's reward for round %s", rw.Block, round))
	case errors.Is(err, icp.ErrInsufficient):
		return warn(fmt.Sprintf("ledger block %d pays less than the %s base units claimed", rw.Block, amount))
	case err != nil:
		return warn(fmt.Sprintf("ledger block %d could not be checked as a transfer of it to this node's account: %v", rw.Block, err))
	case pay.Amount.Cmp(amount) != 0:
		return warn(fmt.Sprintf("ledger block %d pays %s base units, not %s", rw.Block, pay.Amount, amount))
	}
	rec.Verified = true
	return rec
}
