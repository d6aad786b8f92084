// Package ledger connects the node to the ICP ledger: a client made on first use, the paying
// identity, the coordinator's per-peer budget of payment verifications, and the mapping of the
// ledger's refusals to API errors.
package ledger

import (
	"context"
	"math/big"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/protocols/icp"
)

// Ledger is what the node uses of the ICP ledger: the payer's transfers and the search for a
// transfer whose reply was lost, the coordinator's payment verification, and the balance and token
// details for display. *icp.Client implements it; tests use the hand-written
// ledgertest.Fake so payment logic runs without an emulated replica.
type Ledger interface {
	// Principal is the paying account's owner.
	Principal() principal.Principal
	// Ledger is the ledger canister's ID.
	Ledger() principal.Principal
	// Transfer sends amount to to, stamped with createdAt so the ledger deduplicates a retry: a
	// retry of an executed transfer returns the first one's block, not an error.
	Transfer(ctx context.Context, to icp.Account, amount *big.Int, memo []byte, createdAt time.Time) (uint64, error)
	// LogLength is the number of blocks on the ledger (where a search for a new transfer starts).
	LogLength(ctx context.Context) (uint64, error)
	// FindTransfer looks for s among the blocks from from on, sent by Principal.
	FindTransfer(ctx context.Context, from uint64, s icp.Sent) (uint64, bool, error)
	// VerifyPayment checks that block is a certified transfer as want describes.
	VerifyPayment(ctx context.Context, block uint64, want icp.Expect) (*icp.Payment, error)
	// Balance is a's balance in base units.
	Balance(ctx context.Context, a icp.Account) (*big.Int, error)
	// Token reads the token's symbol, decimals and fee.
	Token(ctx context.Context) (icp.Token, error)
	// CachedToken returns the token details if they were read already, without asking.
	CachedToken() (icp.Token, bool)
	// Kind is the configured kind, or the detected one (ICRC-3 or the ICP ledger), remembered.
	Kind(ctx context.Context) (icp.LedgerKind, error)
	// KnownKind is the configured or detected kind, without asking (auto before detection).
	KnownKind() icp.LedgerKind
}

var _ Ledger = (*icp.Client)(nil)
