package adminrpc

// RoundReward is a trainer's reward for a round it contributed to (round_report's reward on a
// trainer, an addition to shared/API.md): what the round's coordinator says it paid, and whether
// this node checked it on the ledger. Verified is true only once the trainer found block on the
// ledger to be a transfer of exactly amount to its own account, from payer, with the memo
// SHA-256("califusion/reward/v1" ‖ round ID ‖ trainer peer ID); otherwise warning says why not.
type RoundReward struct {
	Amount       string `json:"amount"`                  // base units
	AmountTokens string `json:"amount_tokens,omitempty"` // e.g. "0.01 ICP" (the ledger's decimals and symbol)
	Block        uint64 `json:"block"`                   // the ledger block of the transfer
	Payer        string `json:"payer"`                   // principal the coordinator paid from
	Verified     bool   `json:"verified"`
	Warning      string `json:"warning,omitempty"`
}
