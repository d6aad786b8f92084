package keys

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/internal/failpoint"
	"github.com/califusion/califusion/node/internal/limit"
	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/kex"
	keyswire "github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Config configures the keys service.
type Config struct {
	// Self is this node's peer ID: the payment memo binds it, and a coordinator never asks itself.
	Self peer.ID
	// Log is the keys subsystem's logger (the node's, With("subsys", "keys")); nil discards.
	Log *slog.Logger
	// Metrics counts payments and key releases (nil: none).
	Metrics *metrics.Set
	// Key is this node's identity key: it signs the coordinator updates of lineages this node
	// published (Client.UpdateCoordinators); nil: it signs none.
	Key crypto.PrivKey
}

// Deps are the keys service's dependencies. The Coordinator uses Store, Keys, Kex, Catalog,
// Ledger and Rounds; the Client uses Store, Keys, Host, Ledger, Anchoring, Directory and (for
// coordinator updates) Catalog.
type Deps struct {
	Store     *store.Store
	Keys      *Keyring
	Host      host.Host   // client: sessions to coordinators
	Kex       *kex.Server // coordinator: the keys handlers are registered on it
	Catalog   Catalog     // coordinator
	Ledger    Ledger
	Anchoring Anchoring // client
	Directory Directory // client
	// Rounds says which coordinator runs a round on which version (coordinator: a share is
	// released to a fellow coordinator only while it does); nil refuses every such request.
	Rounds Rounds
}

// Limits on key deposits at a coordinator: per peer, depositBurst at once and one every
// depositEvery after that; maxEscrowedRoots lineages per publisher. Tests change them before
// NewCoordinator.
var (
	depositBurst     = 10
	depositEvery     = 15 * time.Second
	maxEscrowedRoots = 256
)

// limiterPeers is how many peers a per-peer rate limiter tracks.
const limiterPeers = 4096

// Coordinator is a coordinator's side of the keys protocol: it keeps deposited keys and releases
// them against verified payments.
type Coordinator struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	depositLimit *limit.PerPeer // key deposits per peer

	escrowMu sync.Mutex
	escrowed map[peer.ID]int // lineage roots per publisher whose key this coordinator holds; nil until first used

	mu  sync.Mutex
	srv *keyswire.Server
}

// NewCoordinator returns a coordinator over deps; it serves nothing until Start.
func NewCoordinator(cfg Config, deps Deps) *Coordinator {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Coordinator{cfg: cfg, deps: deps, log: log, depositLimit: limit.New(depositBurst, depositEvery, limiterPeers)}
}

// Start registers the escrow, unlock and probe handlers on the kex server.
func (c *Coordinator) Start(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv == nil {
		c.srv = keyswire.NewServer(c.deps.Kex, keyswire.Handlers{Escrow: c.Deposit, Unlock: c.Unlock, Probe: c.Probe, RoundShare: c.RoundShare, Coordinators: c.SetCoordinators})
	}
	return nil
}

// Close removes the handlers (sessions in progress run to their end). It is idempotent.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv == nil {
		return nil
	}
	err := c.srv.Close()
	c.srv = nil
	return err
}

func refuse(code int, format string, args ...any) *keyswire.Result {
	return &keyswire.Result{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Deposit keeps a publisher's content key, wrapped, once it matches the manifest: only from the
// manifest's publisher, a lineage root only at a coordinator it names (and at most
// maxEscrowedRoots per publisher), a later version only if its lineage verifies (Catalog.Add).
// It is the escrow handler.
func (c *Coordinator) Deposit(ctx context.Context, from peer.ID, d *keyswire.Deposit) *keyswire.Result {
	if !c.depositLimit.Allow(from) {
		return refuse(apierr.Unavailable, "too many key deposits from you: wait a minute and deposit again")
	}
	man, id, err := content.Open(d.Manifest)
	if err != nil {
		return refuse(apierr.Integrity, "the manifest does not verify: %v", err)
	}
	if pub, _ := man.PublisherID(); pub != from {
		return refuse(apierr.Integrity, "only the model's publisher (the peer that signed its manifest) may deposit its key or its shares")
	}
	if len(d.Share) > 0 || man.IsThreshold() {
		return c.depositShare(from, d, man, id)
	}
	if len(d.Key) != content.KeySize {
		return refuse(apierr.Integrity, "the key must be %d bytes", content.KeySize)
	}
	k := content.Key(d.Key)
	defer k.Wipe()
	if err := k.CheckCommitment(man.KeyCommitment); err != nil {
		return refuse(apierr.Integrity, "the deposited key does not match the manifest's key commitment")
	}
	if man.IsRoot() && !man.Names(c.cfg.Self) {
		return refuse(apierr.Role, "this coordinator is not named by the model's lineage root: deposit its key only with the coordinators it names")
	}
	c.escrowMu.Lock()
	defer c.escrowMu.Unlock()
	held := c.holds(id)
	if man.IsRoot() && !held {
		if n := c.escrowedRoots(from); n >= maxEscrowedRoots {
			return refuse(apierr.Conflict, "this coordinator already holds the keys of %d lineages of yours, the most it keeps for one publisher", n)
		}
	}
	rec, _, err := c.deps.Catalog.Add(d.Manifest, "escrow")
	if err != nil {
		return admissionRefusal(err)
	}
	if rec.ThresholdLineage() {
		return refuse(apierr.Role, "the model's lineage escrows its keys t-of-n: this coordinator keeps only its share of a version's key, never the whole key; publish the version with share commitments and deposit the share")
	}
	if err := c.deps.Store.Update(func(tx *store.Tx) error { return c.deps.Keys.Put(tx, id, k) }); err != nil {
		return refuse(apierr.Internal, "store key: %v", err)
	}
	if man.IsRoot() && !held {
		c.escrowed[from]++
	}
	c.log.Info("key escrowed", "model", hex.EncodeToString(id[:]), "peer", from)
	return &keyswire.Result{}
}

// admissionRefusal answers a deposit whose manifest the catalog refused.
func admissionRefusal(err error) *keyswire.Result {
	switch {
	case errors.Is(err, errUnknownParent):
		return refuse(apierr.NotFound, "the model's parent is not in this coordinator's catalog yet: deposit again once it is")
	case errors.Is(err, errLineage):
		return refuse(apierr.Integrity, "refused, %v", err)
	case errors.Is(err, errQuota):
		return refuse(apierr.Conflict, "this coordinator's catalog holds the most models it keeps for one publisher")
	}
	return refuse(apierr.Internal, "store manifest: %v", err)
}

// holds reports whether this coordinator keeps model id's key or its share in its store.
func (c *Coordinator) holds(id content.ModelID) bool {
	return c.deps.Keys.Stored(id) || c.deps.Keys.HasShare(id)
}

// escrowedRoots counts the lineage roots of pub whose key this coordinator holds (counted from
// the catalog on first use, then kept up to date). The caller holds c.escrowMu.
func (c *Coordinator) escrowedRoots(pub peer.ID) int {
	if c.escrowed == nil {
		c.escrowed = map[peer.ID]int{}
		recs, _ := c.deps.Catalog.All()
		for _, r := range recs {
			p, err := r.Manifest.PublisherID()
			if err != nil || p == c.cfg.Self || !r.Manifest.IsRoot() {
				continue
			}
			if c.holds(r.ID) {
				c.escrowed[p]++
			}
		}
	}
	return c.escrowed[pub]
}

// Entitled reports whether trainer may have r's key without paying again, and submit updates
// derived from it: a grant for r's lineage is on record, or trainer published r or its lineage
// root.
func (c *Coordinator) Entitled(r *catalog.Record, trainer peer.ID) bool {
	if has, _ := c.deps.Store.Has(store.GrantKey(r.Lineage(), trainer.String())); has {
		return true
	}
	return r.PublishedBy(trainer)
}

// Unlock verifies a payment and releases the key: the payment is recorded as consumed by
// (trainer, lineage) in the same transaction that grants access, so a crash grants once or not
// at all, and a block can never serve two trainers or two lineages. It is the unlock handler.
func (c *Coordinator) Unlock(ctx context.Context, from peer.ID, u *keyswire.Unlock) (res *keyswire.Result) {
	defer func() { c.cfg.Metrics.KeyRelease(releaseResult(res)) }()
	if len(u.Model) != 32 {
		return refuse(apierr.InvalidParams, "model must be a 32-byte ModelID")
	}
	id := content.ModelID(u.Model)
	rec, err := c.deps.Catalog.Get(id)
	if err != nil {
		return refuse(apierr.NotFound, "the coordinator does not know model %x", id[:6])
	}
	released, refusal := c.release(rec)
	if refusal != nil {
		return refusal
	}
	defer clear(released.Key)
	defer clear(released.Share)
	// Grants, the memo, the price and the payee all belong to the derived lineage root: a
	// version that is its own root (a fork) can never grant rights on another lineage.
	lineage := rec.Lineage()
	trainer := from.String()
	grantKey := store.GrantKey(lineage, trainer)

	// A trainer that paid for the lineage before gets the key again.
	var g store.Grant
	if err := c.deps.Store.Get(grantKey, &g); err == nil || rec.PublishedBy(from) {
		return resultCopy(released)
	}
	if u.Ledger == "" {
		return refuse(apierr.NotUnlocked, "no payment from you for this model's lineage is on record: pay for it first")
	}
	if want := c.deps.Ledger.CanisterID(); u.Ledger != want {
		return refuse(apierr.PaymentInvalid, "payments go to ledger %s, not %s", want, u.Ledger)
	}
	payer, err := principal.Decode(u.Payer)
	if err != nil {
		return refuse(apierr.InvalidParams, "payer %q is not a principal", u.Payer)
	}
	// A block consumed by someone else is refused before the ledger is asked.
	var used store.PaymentRecord
	if err := c.deps.Store.Get(store.PaymentKey(u.Ledger, u.Block), &used); err == nil && (used.Trainer != trainer || string(used.Lineage) != string(lineage[:])) {
		return refuse(apierr.PaymentUsed, "block %d already paid for another trainer or model", u.Block)
	}
	lc, err := c.deps.Ledger.Client()
	if err != nil {
		// The cause (a replica URL, a dial error) stays in this node's log, not in the answer.
		var cause any = err
		if ae, ok := err.(*apierr.Error); ok && ae.Data != nil {
			cause = ae.Data // node/ledger puts the connection error there
		}
		c.log.Warn("ledger unreachable for a key release", "peer", from, "err", cause)
		return refuse(apierr.Unavailable, "the coordinator cannot reach the ledger")
	}
	rootPayee := rec.Payee()
	payee, err := principal.Decode(rootPayee.Owner)
	if err != nil {
		return refuse(apierr.Integrity, "manifest payee is not a principal")
	}
	want := icp.Expect{
		Payer: icp.Account{Owner: payer}, Payee: icp.Account{Owner: payee, Subaccount: subOf(rootPayee.Subaccount)},
		MinAmount: rec.Price(), Memo: keyswire.Memo(lineage, from),
	}
	// Each verification queries the ledger: a per-peer budget bounds what a peer can make us fetch.
	if !c.deps.Ledger.AllowVerify(from) {
		return refuse(apierr.Unavailable, "too many payment verifications from you: retry in a minute")
	}
	vctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pay, err := lc.VerifyPayment(vctx, u.Block, want)
	switch {
	case errors.Is(err, icp.ErrInsufficient):
		return refuse(apierr.PaymentInsufficient, "%v", err)
	case errors.Is(err, icp.ErrWalkLimit):
		return refuse(apierr.Unavailable, "%v", err)
	case err != nil:
		return refuse(apierr.PaymentInvalid, "%v", err)
	}
	failpoint.Crash("unlock-verified") // tests kill the coordinator here: verified, not yet granted
	err = c.deps.Store.Update(func(tx *store.Tx) error {
		var prior store.PaymentRecord
		if err := tx.Get(store.PaymentKey(u.Ledger, u.Block), &prior); err == nil && (prior.Trainer != trainer || string(prior.Lineage) != string(lineage[:])) {
			return errPaymentUsed
		}
		now := time.Now().UTC()
		if err := tx.Put(store.PaymentKey(u.Ledger, u.Block), &store.PaymentRecord{Trainer: trainer, Lineage: lineage[:], Amount: pay.Amount.String(), At: now}); err != nil {
			return err
		}
		return tx.Put(grantKey, &store.Grant{Ledger: u.Ledger, Block: u.Block, At: now, Payer: payer.Encode()})
	})
	if errors.Is(err, errPaymentUsed) {
		return refuse(apierr.PaymentUsed, "block %d already paid for another trainer or model", u.Block)
	}
	if err != nil {
		return refuse(apierr.Internal, "record payment: %v", err)
	}
	c.log.Info("key released", "model", hex.EncodeToString(id[:]), "peer", from, "block", u.Block, "share", len(released.Share) > 0)
	return resultCopy(released)
}

var errPaymentUsed = errors.New("payment used")

// Probe tells a trainer, before it pays, whether this coordinator can release the key. It is the
// probe handler.
func (c *Coordinator) Probe(ctx context.Context, from peer.ID, p *keyswire.Probe) *keyswire.Result {
	if len(p.Model) != 32 {
		return refuse(apierr.InvalidParams, "model must be a 32-byte ModelID")
	}
	id := content.ModelID(p.Model)
	if rec, err := c.deps.Catalog.Get(id); err == nil && rec.Manifest.IsThreshold() {
		if !c.deps.Keys.HasShare(id) {
			return refuse(apierr.NotFound, "the coordinator holds no share of the key of model %x", p.Model[:6])
		}
		return &keyswire.Result{Holds: keyswire.HoldsShare}
	}
	if !c.deps.Keys.Has(id) {
		return refuse(apierr.NotFound, "the coordinator holds no key for model %x", p.Model[:6])
	}
	return &keyswire.Result{Holds: keyswire.HoldsKey}
}

func subOf(b []byte) *[]byte {
	if len(b) == 0 {
		return nil
	}
	return &b
}

// PayoutAccount returns the principal trainer paid for r's lineage from, as this coordinator
// verified it: where a campaign's rewards for the trainer go. ok is false without a grant that
// names one.
func (c *Coordinator) PayoutAccount(r *catalog.Record, trainer peer.ID) (string, bool) {
	var g store.Grant
	if err := c.deps.Store.Get(store.GrantKey(r.Lineage(), trainer.String()), &g); err != nil || g.Payer == "" {
		return "", false
	}
	return g.Payer, true
}
