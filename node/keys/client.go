package keys

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/apierr"
	keyswire "github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Client is the publisher's and the trainer's side of the keys protocol: it escrows published
// keys, pays for lineages and fetches the keys it paid for or is entitled to.
type Client struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	payMu sync.Mutex // serialises pay: read the record, transfer, record the block
}

// NewClient returns a client over deps. It starts no goroutines.
func NewClient(cfg Config, deps Deps) *Client {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, deps: deps, log: log}
}

// Escrow deposits a freshly published model's key with the coordinators that hold it (see
// EscrowKey); it returns how many hold it now (a coordinator that is this node included), and
// an error naming those that failed when fewer than a trainer needs hold it (EscrowReport.Err).
func (c *Client) Escrow(ctx context.Context, r *catalog.Record, k content.Key) (int, error) {
	rep := c.EscrowKey(ctx, r, k)
	return rep.Deposited, rep.Err(r.ID)
}

// Pay pays the price of r's lineage (the model_pay method), after the anchoring policy's check:
// at most once per lineage root and payer unless again is set (see pay).
func (c *Client) Pay(ctx context.Context, r *catalog.Record, again bool) (Payment, error) {
	if err := c.requireAnchor(ctx, r); err != nil {
		return Payment{}, err
	}
	return c.pay(ctx, r, again)
}

// requireAnchor refuses, under anchoring "require", a model whose anchor does not verify.
func (c *Client) requireAnchor(ctx context.Context, r *catalog.Record) error {
	if !c.deps.Anchoring.Required() {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if state, err := c.deps.Anchoring.Check(cctx, r.ID, r.Signed); state != "verified" {
		return &apierr.Error{Code: apierr.Integrity, Message: "the model has no valid Calimero anchor (policy require): refusing to pay for it", Data: errString(err)}
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Unlock obtains r's key (the model_unlock method after the catalog lookup): nil at once if this
// node holds it. With block nil it pays only when some coordinator the lineage's root names can
// release the key and this node is not entitled to it already (pay reuses a recorded payment, so
// a retry never pays twice); with block set it presents that payment on ledgerID (default: the
// configured ledger).
func (c *Client) Unlock(ctx context.Context, r *catalog.Record, block *uint64, ledgerID string) error {
	if k, err := c.deps.Keys.Get(r.ID); err == nil {
		k.Wipe()
		return nil
	}
	payer, err := c.deps.Ledger.Client()
	if err != nil {
		return err // already an *apierr.Error Unavailable that says what to check, with the cause
	}
	// The anchoring policy holds for a payment made elsewhere (an explicit block) as well.
	if err := c.requireAnchor(ctx, r); err != nil {
		return err
	}
	if r.Manifest.IsThreshold() {
		return c.unlockShares(ctx, r, block, ledgerID, payer.Principal().Encode())
	}
	req := &keyswire.Unlock{Model: r.ID[:], Ledger: ledgerID, Payer: payer.Principal().Encode()}
	// Only coordinators the lineage's root names hold its key: a peer that merely claims the
	// coordinator role in its presence is never asked (nor waited for).
	var coords []peer.ID
	for _, co := range c.deps.Directory.Coordinators() {
		if r.Authorises(co) {
			coords = append(coords, co)
		}
	}
	if block == nil {
		// Pay only when some coordinator can release the key, and only if this node has not paid
		// for the lineage already (or published it). pay reuses a recorded payment, and re-sends
		// a pending one as the same transaction, so a retry after a failure never pays twice.
		if coords = c.holders(ctx, coords, r.ID); len(coords) == 0 {
			return apierr.Errorf(apierr.NotFound, "no reachable coordinator holds the key of model %s: nothing was paid", hex.EncodeToString(r.ID[:]))
		}
		err := c.requestKey(ctx, r, coords, &keyswire.Unlock{Model: r.ID[:]})
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Code != apierr.NotUnlocked {
			return err
		}
		paid, err := c.pay(ctx, r, false)
		if err != nil {
			return err
		}
		req.Ledger, req.Block = paid.Ledger, paid.Block
	} else {
		req.Block = *block
	}
	if req.Ledger == "" {
		req.Ledger = c.deps.Ledger.CanisterID()
	}
	return c.requestKey(ctx, r, coords, req)
}

// Claim obtains a key this node is entitled to without paying (it paid for r's lineage, or
// published it), asking coords in turn (for a threshold version: its share holders, in parallel): nil at once if this node holds it; a coordinator's
// refusal because nothing is on record is an *apierr.Error NotUnlocked.
func (c *Client) Claim(ctx context.Context, r *catalog.Record, coords []peer.ID) error {
	if k, err := c.deps.Keys.Get(r.ID); err == nil {
		k.Wipe()
		return nil
	}
	if r.Manifest.IsThreshold() {
		return c.claimShares(ctx, r)
	}
	return c.requestKey(ctx, r, coords, &keyswire.Unlock{Model: r.ID[:]})
}

// holders returns the coordinators among coords that say they hold the key of id.
func (c *Client) holders(ctx context.Context, coords []peer.ID, id content.ModelID) []peer.ID {
	var out []peer.ID
	for _, co := range coords {
		if co == c.cfg.Self {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := keyswire.Request(pctx, c.deps.Host, co, keyswire.PurposeProbe, &keyswire.Probe{Model: id[:]})
		cancel()
		if err == nil {
			out = append(out, co)
		}
	}
	return out
}

// requestKey asks coordinators in turn for r's key with req, checks the key against the
// manifest's commitment and keeps it. A request without a ledger asks for a key this node is
// already entitled to (it paid for the lineage, or published it); the refusal is not_unlocked.
func (c *Client) requestKey(ctx context.Context, r *catalog.Record, coords []peer.ID, req *keyswire.Unlock) error {
	if len(coords) == 0 {
		return apierr.Errorf(apierr.Unavailable, "no coordinator is known yet: connect to the network and retry")
	}
	var last error = apierr.Errorf(apierr.Unavailable, "no coordinator answered")
	for _, co := range coords {
		if co == c.cfg.Self {
			continue // a coordinator that lacks the key locally cannot ask itself
		}
		uctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		res, err := keyswire.Request(uctx, c.deps.Host, co, keyswire.PurposeUnlock, req)
		cancel()
		var refusal *keyswire.Error
		if errors.As(err, &refusal) {
			last = &apierr.Error{Code: refusal.Code, Message: refusal.Message}
			if refusal.Code == apierr.NotFound || refusal.Code == apierr.Unavailable {
				continue // another coordinator may hold the key
			}
			return last
		}
		if err != nil {
			last = &apierr.Error{Code: apierr.Unavailable, Message: "coordinator " + co.String() + " could not be reached", Data: err.Error()}
			continue
		}
		if len(res.Key) != content.KeySize {
			return apierr.Errorf(apierr.Integrity, "the coordinator sent a malformed key")
		}
		k := content.Key(res.Key)
		defer k.Wipe()
		if err := k.CheckCommitment(r.Manifest.KeyCommitment); err != nil {
			return apierr.Errorf(apierr.Integrity, "the released key does not match the manifest's key commitment")
		}
		if err := c.deps.Store.Update(func(tx *store.Tx) error { return c.deps.Keys.Put(tx, r.ID, k) }); err != nil {
			return err
		}
		c.log.Info("model unlocked", "model", hex.EncodeToString(r.ID[:]), "coordinator", co, "block", req.Block)
		return nil
	}
	return last
}
