package main

import (
	"testing"

	"github.com/califusion/califusion/protocols/adminrpc"
)

// TestRewardLine: round report's reward line says amount, block and whether it was verified.
func TestRewardLine(t *testing.T) {
	for _, c := range []struct {
		r    adminrpc.RoundReward
		want string
	}{
		{adminrpc.RoundReward{Amount: "1000000", AmountTokens: "0.01 ICP", Block: 42, Verified: true}, "reward: 0.01 ICP (block 42, verified on the ledger)"},
		{adminrpc.RoundReward{Amount: "1000", Block: 7, Warning: "no such block"}, "reward: 1000 base units (block 7, NOT verified: no such block)"},
	} {
		if got := rewardLine(c.r); got != c.want {
			t.Errorf("rewardLine(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
}
