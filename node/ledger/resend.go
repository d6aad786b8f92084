package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/califusion/califusion/protocols/icp"
)

// Durable transfers. A payment (node/keys) or a reward (node/campaign) is recorded, synced,
// with its created_at_time and the ledger's length before it is first sent, so that a crash, a
// timeout or a lost answer never pays twice: Resend settles such a record. The ledger
// deduplicates a transaction with a created_at_time for 24 h (ICRC-1's TX_WINDOW, plus a 2 min
// drift): while well inside that window the transfer is sent again as is (an executed one answers
// with its first block); past it the ledger is searched for it, and a new transfer may be made
// only once the old one can no longer land (window, drift and the 5 min ingress expiry of a
// request still in flight).
const (
	ResubmitWindow = 24*time.Hour - 10*time.Minute
	LandingWindow  = 24*time.Hour + 2*time.Minute + 6*time.Minute
)

// Resend's outcomes other than the ledger's own errors.
var (
	// ErrNeverLanded: the transfer is certainly not on the ledger and can no longer land; a
	// new one may be made.
	ErrNeverLanded = errors.New("the recorded transfer never reached the ledger and can no longer land")
	// ErrMayLand: the transfer is not on the ledger but could still land: retry after
	// LandingWindow from its created_at_time.
	ErrMayLand = errors.New("the recorded transfer is not on the ledger but could still land")
	// ErrLookup: the ledger could not be searched for the transfer (it wraps the cause).
	ErrLookup = errors.New("the ledger could not be searched for the recorded transfer")
)

// Resend settles the recorded transfer s (s.CreatedAt is its created_at_time in Unix
// nanoseconds; from the ledger's length before it was first sent) as of now, and returns its
// block. Errors of the transfer itself are the ledger's (icp.ErrInsufficientFunds: it never
// executed).
func Resend(ctx context.Context, lc Ledger, s icp.Sent, from uint64, now time.Time) (uint64, error) {
	created := time.Unix(0, int64(s.CreatedAt))
	age := now.Sub(created)
	if age < ResubmitWindow {
		block, err := lc.Transfer(ctx, s.To, s.Amount, s.Memo, created)
		if !errors.Is(err, icp.ErrTooOld) {
			return block, err
		}
		// Clock skew near the window's end: the ledger no longer deduplicates it; look.
	}
	block, found, err := lc.FindTransfer(ctx, from, s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w: %w", ErrLookup, err)
	case found:
		return block, nil
	case age < LandingWindow:
		return 0, ErrMayLand
	}
	return 0, ErrNeverLanded
}
