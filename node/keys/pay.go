package keys

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/internal/failpoint"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/icp"
	keyswire "github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/store"
)

// Payment is a payment for a lineage: the ledger canister, the block, the amount in base units,
// the memo (hex), and whether it had been made before (and was not made again).
type Payment struct {
	Ledger      string
	Block       uint64
	Amount      string
	Memo        string
	AlreadyPaid bool
}

// pay pays the price of r's lineage to its payee with the binding memo, at most once per lineage
// root and payer: a payment already made is returned (AlreadyPaid) unless again is set, and a
// payment that was started but not confirmed (an error, a timeout, a crash) is re-sent as the
// same transaction, which the ledger deduplicates.
func (c *Client) pay(ctx context.Context, r *catalog.Record, again bool) (res Payment, err error) {
	defer func() { c.recordPayment(res, err) }()
	lc, err := c.deps.Ledger.Client()
	if err != nil {
		return Payment{}, err
	}
	c.payMu.Lock()
	defer c.payMu.Unlock()
	root := r.Lineage()
	key := store.PaidKey(lc.Ledger().Encode(), root, lc.Principal().Encode())
	var rec store.Paid
	switch err := c.deps.Store.Get(key, &rec); {
	case err == nil && rec.Done && !again:
		return paidResult(lc, &rec, true), nil
	case err == nil && !rec.Done:
		// Finish what was started, even with again: it may already be on the ledger.
		res, err := c.resumePayment(ctx, lc, key, &rec)
		if !errors.Is(err, ledger.ErrNeverLanded) {
			return res, err
		}
		c.log.Warn("pending payment never reached the ledger: paying anew", "model", rec.Model, "created_at", rec.CreatedAt)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return Payment{}, fmt.Errorf("read payment record: %w", err)
	}
	// Price and payee are the lineage root's (r.Root is derived, never read from the manifest).
	payee, err := principal.Decode(r.Payee().Owner)
	if err != nil {
		return Payment{}, apierr.Errorf(apierr.Integrity, "the lineage root's payee is not a principal")
	}
	from, err := lc.LogLength(ctx)
	if err != nil {
		return Payment{}, ledger.Err(err)
	}
	now := time.Now()
	rec = store.Paid{
		To: payee.Encode(), Subaccount: r.Payee().Subaccount, Amount: r.Price().String(),
		Memo: keyswire.Memo(root, c.cfg.Self), CreatedAt: uint64(now.UnixNano()), FromBlock: from,
		Model: hex.EncodeToString(r.ID[:]), Started: now.UTC(),
	}
	// Synced: a record lost to a power cut after the transfer left would let a retry pay twice.
	if err := c.deps.Store.PutSync(key, &rec); err != nil {
		return Payment{}, fmt.Errorf("record the payment before sending it: %w", err)
	}
	return c.sendPayment(ctx, lc, key, &rec)
}

// sent returns the transfer a payment record stands for.
func sent(rec *store.Paid) (icp.Sent, error) {
	to, err := principal.Decode(rec.To)
	if err != nil {
		return icp.Sent{}, fmt.Errorf("payment record: payee %q: %w", rec.To, err)
	}
	amount, ok := new(big.Int).SetString(rec.Amount, 10)
	if !ok {
		return icp.Sent{}, fmt.Errorf("payment record: amount %q", rec.Amount)
	}
	return icp.Sent{To: icp.Account{Owner: to, Subaccount: subOf(rec.Subaccount)}, Amount: amount, Memo: rec.Memo, CreatedAt: rec.CreatedAt}, nil
}

// sendPayment sends the recorded transfer (the same arguments on every call) and records its
// block. A duplicate answer is the first attempt's block.
func (c *Client) sendPayment(ctx context.Context, lc ledger.Ledger, key store.Key, rec *store.Paid) (Payment, error) {
	s, err := sent(rec)
	if err != nil {
		return Payment{}, err
	}
	idx, err := lc.Transfer(ctx, s.To, s.Amount, s.Memo, time.Unix(0, int64(rec.CreatedAt)))
	if errors.Is(err, icp.ErrInsufficientFunds) {
		// The ledger checks the balance after deduplication: this transaction never executed
		// (nor did an earlier attempt), so the next payment may start afresh.
		if derr := c.deps.Store.Delete(key); derr != nil {
			c.log.Warn("forget a refused payment", "model", rec.Model, "err", derr)
		}
	}
	if err != nil {
		return Payment{}, ledger.Err(err)
	}
	failpoint.Crash("pay-transferred") // tests kill the payer here: transferred, not yet recorded
	return c.recordPaid(lc, key, rec, idx)
}

func (c *Client) recordPaid(lc ledger.Ledger, key store.Key, rec *store.Paid, block uint64) (Payment, error) {
	rec.Done, rec.Block, rec.PaidAt = true, block, time.Now().UTC()
	if err := c.deps.Store.PutSync(key, rec); err != nil {
		return Payment{}, fmt.Errorf("record payment block %d: %w", block, err)
	}
	c.log.Info("model paid", "model", rec.Model, "block", block, "amount", rec.Amount)
	return paidResult(lc, rec, false), nil
}

// resumePayment settles a payment that was started and not confirmed (ledger.Resend): re-sent
// while the ledger still deduplicates it, else looked for on the ledger. It returns
// ledger.ErrNeverLanded when the payment is certainly not there and can no longer land.
func (c *Client) resumePayment(ctx context.Context, lc ledger.Ledger, key store.Key, rec *store.Paid) (Payment, error) {
	s, err := sent(rec)
	if err != nil {
		return Payment{}, err
	}
	idx, err := ledger.Resend(ctx, lc, s, rec.FromBlock, time.Now())
	switch {
	case errors.Is(err, ledger.ErrLookup):
		return Payment{}, &apierr.Error{Code: apierr.Unavailable,
			Message: fmt.Sprintf("a payment for model %s started %s (memo %x, created_at_time %d) was never confirmed and the ledger no longer deduplicates it; it could not be looked up, so nothing was paid: find its block on the ledger and unlock with --block, or retry later", rec.Model, rec.Started.Format(time.RFC3339), rec.Memo, rec.CreatedAt),
			Data:    err.Error()}
	case errors.Is(err, ledger.ErrMayLand):
		return Payment{}, apierr.Errorf(apierr.Unavailable,
			"a payment for model %s started %s (memo %x, created_at_time %d) is not on the ledger but could still land: nothing was paid, retry after %s",
			rec.Model, rec.Started.Format(time.RFC3339), rec.Memo, rec.CreatedAt, time.Unix(0, int64(rec.CreatedAt)).Add(ledger.LandingWindow).UTC().Format(time.RFC3339))
	case errors.Is(err, ledger.ErrNeverLanded):
		return Payment{}, err
	case errors.Is(err, icp.ErrInsufficientFunds):
		// The ledger checks the balance after deduplication: this transaction never executed
		// (nor did an earlier attempt), so the next payment may start afresh.
		if derr := c.deps.Store.Delete(key); derr != nil {
			c.log.Warn("forget a refused payment", "model", rec.Model, "err", derr)
		}
		return Payment{}, ledger.Err(err)
	case err != nil:
		return Payment{}, ledger.Err(err)
	}
	return c.recordPaid(lc, key, rec, idx)
}

func paidResult(lc ledger.Ledger, rec *store.Paid, already bool) Payment {
	return Payment{Ledger: lc.Ledger().Encode(), Block: rec.Block, Amount: rec.Amount, Memo: hex.EncodeToString(rec.Memo), AlreadyPaid: already}
}
