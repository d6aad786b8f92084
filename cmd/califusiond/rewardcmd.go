package main

import (
	"fmt"

	"github.com/califusion/califusion/protocols/adminrpc"
)

// rewardLine is `round report`'s line for a trainer's reward, e.g.
// "reward: 0.01 ICP (block 42, verified on the ledger)".
func rewardLine(r adminrpc.RoundReward) string {
	amount := r.AmountTokens
	if amount == "" {
		amount = r.Amount + " base units"
	}
	if r.Verified {
		return fmt.Sprintf("reward: %s (block %d, verified on the ledger)", amount, r.Block)
	}
	return fmt.Sprintf("reward: %s (block %d, NOT verified: %s)", amount, r.Block, r.Warning)
}
