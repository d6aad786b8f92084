package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

func (n *Node) registerPayRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "model_pay", n.rpcModelPay)
	adminrpc.Handle(s, "model_unlock", n.rpcModelUnlock)
}

// The ledger deduplicates a transaction with a created_at_time for 24 h (ICRC-1: TX_WINDOW, plus
// a 2 min drift). A pending payment is re-submitted as is while well inside that window; past it,
// the ledger is searched for it, and a new transfer is made only once the old one can no longer
// land (window, drift and the 5 min ingress expiry of a request still in flight).
const (
	resubmitWindow = 24*time.Hour - 10*time.Minute
	landingWindow  = 24*time.Hour + 2*time.Minute + 6*time.Minute
)

// errNeverLanded says a pending payment is certainly not on the ledger and can no longer land.
var errNeverLanded = errors.New("pending payment never landed")

// pay pays the price of r's lineage to its payee with the binding memo, at most once per lineage
// root and payer: a payment already made is returned (AlreadyPaid) unless again is set, and a
// payment that was started but not confirmed (an error, a timeout, a crash) is re-sent as the
// same transaction, which the ledger deduplicates.
func (n *Node) pay(ctx context.Context, r *record, again bool) (adminrpc.PayResult, error) {
	c, err := n.ledgerClient()
	if err != nil {
		return adminrpc.PayResult{}, err
	}
	n.ledger.payMu.Lock()
	defer n.ledger.payMu.Unlock()
	root := r.Lineage()
	key := store.PaidKey(c.Ledger().Encode(), root, c.Principal().Encode())
	var rec store.Paid
	switch err := n.store.Get(key, &rec); {
	case err == nil && rec.Done && !again:
		return paidResult(c, &rec, true), nil
	case err == nil && !rec.Done:
		// Finish what was started, even with again: it may already be on the ledger.
		res, err := n.resumePayment(ctx, c, key, &rec)
		if !errors.Is(err, errNeverLanded) {
			return res, err
		}
		n.log.Warn("pending payment never reached the ledger: paying anew", "model", rec.Model, "created_at", rec.CreatedAt)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return adminrpc.PayResult{}, fmt.Errorf("read payment record: %w", err)
	}
	// Price and payee are the lineage root's (r.Root is derived, never read from the manifest).
	payee, err := principal.Decode(r.Payee().Owner)
	if err != nil {
		return adminrpc.PayResult{}, adminrpc.Errorf(adminrpc.CodeIntegrity, "the lineage root's payee is not a principal")
	}
	from, err := c.LogLength(ctx)
	if err != nil {
		return adminrpc.PayResult{}, ledgerErr(err)
	}
	now := time.Now()
	rec = store.Paid{
		To: payee.Encode(), Subaccount: r.Payee().Subaccount, Amount: r.Price().String(),
		Memo: keys.Memo(root, n.host.ID()), CreatedAt: uint64(now.UnixNano()), FromBlock: from,
		Model: hex.EncodeToString(r.ID[:]), Started: now.UTC(),
	}
	// Synced: a record lost to a power cut after the transfer left would let a retry pay twice.
	if err := n.store.PutSync(key, &rec); err != nil {
		return adminrpc.PayResult{}, fmt.Errorf("record the payment before sending it: %w", err)
	}
	return n.sendPayment(ctx, c, key, &rec)
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
func (n *Node) sendPayment(ctx context.Context, c Ledger, key store.Key, rec *store.Paid) (adminrpc.PayResult, error) {
	s, err := sent(rec)
	if err != nil {
		return adminrpc.PayResult{}, err
	}
	idx, err := c.Transfer(ctx, s.To, s.Amount, s.Memo, time.Unix(0, int64(rec.CreatedAt)))
	if errors.Is(err, icp.ErrTooOld) {
		return adminrpc.PayResult{}, fmt.Errorf("%w: %w", errTooOld, ledgerErr(err))
	}
	if errors.Is(err, icp.ErrInsufficientFunds) {
		// The ledger checks the balance after deduplication: this transaction never executed
		// (nor did an earlier attempt), so the next payment may start afresh.
		if derr := n.store.Delete(key); derr != nil {
			n.log.Warn("forget a refused payment", "model", rec.Model, "err", derr)
		}
	}
	if err != nil {
		return adminrpc.PayResult{}, ledgerErr(err)
	}
	crashPoint("pay-transferred") // tests kill the payer here: transferred, not yet recorded
	return n.recordPaid(c, key, rec, idx)
}

func (n *Node) recordPaid(c Ledger, key store.Key, rec *store.Paid, block uint64) (adminrpc.PayResult, error) {
	rec.Done, rec.Block, rec.PaidAt = true, block, time.Now().UTC()
	if err := n.store.PutSync(key, rec); err != nil {
		return adminrpc.PayResult{}, fmt.Errorf("record payment block %d: %w", block, err)
	}
	n.log.Info("model paid", "model", rec.Model, "block", block, "amount", rec.Amount)
	return paidResult(c, rec, false), nil
}

// resumePayment settles a payment that was started and not confirmed: re-sent while the ledger
// still deduplicates it, else looked for on the ledger. It returns errNeverLanded when the
// payment is certainly not there and can no longer land.
func (n *Node) resumePayment(ctx context.Context, c Ledger, key store.Key, rec *store.Paid) (adminrpc.PayResult, error) {
	age := time.Since(time.Unix(0, int64(rec.CreatedAt)))
	if age < resubmitWindow {
		res, err := n.sendPayment(ctx, c, key, rec)
		if !errors.Is(err, errTooOld) {
			return res, err
		}
	}
	s, err := sent(rec)
	if err != nil {
		return adminrpc.PayResult{}, err
	}
	idx, found, err := c.FindTransfer(ctx, rec.FromBlock, s)
	if err != nil {
		return adminrpc.PayResult{}, &adminrpc.Error{Code: adminrpc.CodeUnavailable,
			Message: fmt.Sprintf("a payment for model %s started %s (memo %x, created_at_time %d) was never confirmed and the ledger no longer deduplicates it; it could not be looked up, so nothing was paid: find its block on the ledger and unlock with --block, or retry later", rec.Model, rec.Started.Format(time.RFC3339), rec.Memo, rec.CreatedAt),
			Data:    err.Error()}
	}
	if found {
		return n.recordPaid(c, key, rec, idx)
	}
	if age < landingWindow {
		return adminrpc.PayResult{}, adminrpc.Errorf(adminrpc.CodeUnavailable,
			"a payment for model %s started %s (memo %x, created_at_time %d) is not on the ledger but could still land: nothing was paid, retry after %s",
			rec.Model, rec.Started.Format(time.RFC3339), rec.Memo, rec.CreatedAt, time.Unix(0, int64(rec.CreatedAt)).Add(landingWindow).UTC().Format(time.RFC3339))
	}
	return adminrpc.PayResult{}, errNeverLanded
}

// errTooOld marks a re-sent payment the ledger calls too old (clock skew near the window's end).
var errTooOld = errors.New("too old")

func paidResult(c Ledger, rec *store.Paid, already bool) adminrpc.PayResult {
	return adminrpc.PayResult{Ledger: c.Ledger().Encode(), BlockIndex: rec.Block, Amount: rec.Amount, Memo: hex.EncodeToString(rec.Memo), AlreadyPaid: already}
}

// holders returns the coordinators among coords that say they hold the key of id.
func (n *Node) holders(ctx context.Context, coords []peer.ID, id content.ModelID) []peer.ID {
	var out []peer.ID
	for _, c := range coords {
		if c == n.host.ID() {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := keys.Request(pctx, n.host, c, keys.PurposeProbe, &keys.Probe{Model: id[:]})
		cancel()
		if err == nil {
			out = append(out, c)
		}
	}
	return out
}

func (n *Node) rpcModelPay(ctx context.Context, p adminrpc.PayParams) (adminrpc.PayResult, error) {
	r, err := n.lookup(p.ModelID)
	if err != nil {
		return adminrpc.PayResult{}, err
	}
	if err := n.requireAnchor(ctx, r); err != nil {
		return adminrpc.PayResult{}, err
	}
	return n.pay(ctx, r, p.Again)
}

// requireAnchor refuses, under anchoring "require", a model whose anchor does not verify.
func (n *Node) requireAnchor(ctx context.Context, r *record) error {
	if n.anchoring.policy != "require" {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if state, err := n.anchoring.check(cctx, r.ID, r.Signed); state != "verified" {
		return &adminrpc.Error{Code: adminrpc.CodeIntegrity, Message: "the model has no valid Calimero anchor (policy require): refusing to pay for it", Data: errString(err)}
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (n *Node) rpcModelUnlock(ctx context.Context, p adminrpc.UnlockParams) (adminrpc.UnlockResult, error) {
	r, err := n.lookup(p.ModelID)
	if err != nil {
		return adminrpc.UnlockResult{}, err
	}
	if _, err := n.models.keys.get(r.ID); err == nil {
		return adminrpc.UnlockResult{Unlocked: true}, nil
	}
	payer, err := n.ledger.client()
	if err != nil {
		return adminrpc.UnlockResult{}, &adminrpc.Error{Code: adminrpc.CodeUnavailable, Message: "the ICP replica could not be reached", Data: err.Error()}
	}
	// The anchoring policy holds for a payment made elsewhere (an explicit block) as well.
	if err := n.requireAnchor(ctx, r); err != nil {
		return adminrpc.UnlockResult{}, err
	}
	req := &keys.Unlock{Model: r.ID[:], Ledger: p.Ledger, Payer: payer.Principal().Encode()}
	// Only coordinators the lineage's root names hold its key: a peer that merely claims the
	// coordinator role in its presence is never asked (nor waited for).
	var coords []peer.ID
	for _, c := range n.coordinators() {
		if r.authorises(c) {
			coords = append(coords, c)
		}
	}
	if p.BlockIndex == nil {
		// Pay only when some coordinator can release the key, and only if this node has not paid
		// for the lineage already (or published it). pay reuses a recorded payment, and re-sends
		// a pending one as the same transaction, so a retry after a failure never pays twice.
		if coords = n.holders(ctx, coords, r.ID); len(coords) == 0 {
			return adminrpc.UnlockResult{}, adminrpc.Errorf(adminrpc.CodeNotFound, "no reachable coordinator holds the key of model %s: nothing was paid", p.ModelID)
		}
		err := n.requestKey(ctx, r, coords, &keys.Unlock{Model: r.ID[:]})
		var ae *adminrpc.Error
		if !errors.As(err, &ae) || ae.Code != adminrpc.CodeNotUnlocked {
			return adminrpc.UnlockResult{Unlocked: err == nil}, err
		}
		paid, err := n.pay(ctx, r, false)
		if err != nil {
			return adminrpc.UnlockResult{}, err
		}
		req.Ledger, req.Block = paid.Ledger, paid.BlockIndex
	} else {
		req.Block = *p.BlockIndex
	}
	if req.Ledger == "" {
		req.Ledger = n.cfg.ICP.LedgerCanisterID
	}
	if err := n.requestKey(ctx, r, coords, req); err != nil {
		return adminrpc.UnlockResult{}, err
	}
	return adminrpc.UnlockResult{Unlocked: true}, nil
}

// requestKey asks coordinators in turn for r's key with req, checks the key against the
// manifest's commitment and keeps it. A request without a ledger asks for a key this node is
// already entitled to (it paid for the lineage, or published it); the refusal is not_unlocked.
func (n *Node) requestKey(ctx context.Context, r *record, coords []peer.ID, req *keys.Unlock) error {
	if len(coords) == 0 {
		return adminrpc.Errorf(adminrpc.CodeUnavailable, "no coordinator is known yet: connect to the network and retry")
	}
	var last error = adminrpc.Errorf(adminrpc.CodeUnavailable, "no coordinator answered")
	for _, c := range coords {
		if c == n.host.ID() {
			continue // a coordinator that lacks the key locally cannot ask itself
		}
		uctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		res, err := keys.Request(uctx, n.host, c, keys.PurposeUnlock, req)
		cancel()
		var refusal *keys.Error
		if errors.As(err, &refusal) {
			last = &adminrpc.Error{Code: refusal.Code, Message: refusal.Message}
			if refusal.Code == adminrpc.CodeNotFound || refusal.Code == adminrpc.CodeUnavailable {
				continue // another coordinator may hold the key
			}
			return last
		}
		if err != nil {
			last = &adminrpc.Error{Code: adminrpc.CodeUnavailable, Message: "coordinator " + c.String() + " could not be reached", Data: err.Error()}
			continue
		}
		if len(res.Key) != content.KeySize {
			return adminrpc.Errorf(adminrpc.CodeIntegrity, "the coordinator sent a malformed key")
		}
		k := content.Key(res.Key)
		defer k.Wipe()
		if err := k.CheckCommitment(r.Manifest.KeyCommitment); err != nil {
			return adminrpc.Errorf(adminrpc.CodeIntegrity, "the released key does not match the manifest's key commitment")
		}
		if err := n.store.Update(func(tx *store.Tx) error { return n.models.keys.put(tx, r.ID, k) }); err != nil {
			return err
		}
		n.log.Info("model unlocked", "model", hex.EncodeToString(r.ID[:]), "coordinator", c, "block", req.Block)
		return nil
	}
	return last
}
