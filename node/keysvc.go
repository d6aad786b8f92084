package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// startKeys registers the kex server, and on a coordinator the escrow and unlock handlers.
func (n *Node) startKeys(context.Context) error {
	n.kex = kex.NewServer(n.ctx, n.host, n.log.With("subsys", "kex"))
	n.onStop(n.kex.Close)
	if n.cfg.HasRole(config.RoleCoordinator) {
		n.onStop(keys.NewServer(n.kex, keys.Handlers{Escrow: n.handleDeposit, Unlock: n.handleUnlock, Probe: n.handleProbe}).Close)
	}
	return nil
}

func refuse(code int, format string, args ...any) *keys.Result {
	return &keys.Result{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Limits on key deposits at a coordinator: per peer, depositBurst at once and one every
// depositEvery after that; maxEscrowedRoots lineages per publisher.
var (
	depositBurst     = 10
	depositEvery     = 15 * time.Second
	maxEscrowedRoots = 256
)

// handleDeposit keeps a publisher's content key, wrapped, once it matches the manifest: only
// from the manifest's publisher, a lineage root only at a coordinator it names (and at most
// maxEscrowedRoots per publisher), a later version only if its lineage verifies (models.add).
func (n *Node) handleDeposit(ctx context.Context, from peer.ID, d *keys.Deposit) *keys.Result {
	m := n.models
	if !m.depositLimit.allow(from) {
		return refuse(adminrpc.CodeUnavailable, "too many key deposits from you: wait a minute and deposit again")
	}
	man, id, err := content.Open(d.Manifest)
	if err != nil {
		return refuse(adminrpc.CodeIntegrity, "the manifest does not verify: %v", err)
	}
	if pub, _ := man.PublisherID(); pub != from {
		return refuse(adminrpc.CodeIntegrity, "only the model's publisher may deposit its key")
	}
	if len(d.Key) != content.KeySize {
		return refuse(adminrpc.CodeIntegrity, "the key must be %d bytes", content.KeySize)
	}
	k := content.Key(d.Key)
	defer k.Wipe()
	if err := k.CheckCommitment(man.KeyCommitment); err != nil {
		return refuse(adminrpc.CodeIntegrity, "the deposited key does not match the manifest's key commitment")
	}
	if man.IsRoot() && !man.Names(n.host.ID()) {
		return refuse(adminrpc.CodeRole, "this coordinator is not named by the model's lineage root: deposit its key only with the coordinators it names")
	}
	m.escrowMu.Lock()
	defer m.escrowMu.Unlock()
	held, _ := n.store.Has(store.KeyKey(id))
	if man.IsRoot() && !held {
		if c := m.escrowedRoots(from); c >= maxEscrowedRoots {
			return refuse(adminrpc.CodeConflict, "this coordinator already holds the keys of %d lineages of yours, the most it keeps for one publisher", c)
		}
	}
	if _, _, err := m.add(d.Manifest, "escrow"); err != nil {
		switch {
		case errors.Is(err, errUnknownParent):
			return refuse(adminrpc.CodeNotFound, "the model's parent is not in this coordinator's catalog yet: deposit again once it is")
		case errors.Is(err, errLineage):
			return refuse(adminrpc.CodeIntegrity, "refused, %v", err)
		case errors.Is(err, errCatalogQuota):
			return refuse(adminrpc.CodeConflict, "this coordinator's catalog holds the most models it keeps for one publisher")
		}
		return refuse(adminrpc.CodeInternal, "store manifest: %v", err)
	}
	if err := n.store.Update(func(tx *store.Tx) error { return m.keys.put(tx, id, k) }); err != nil {
		return refuse(adminrpc.CodeInternal, "store key: %v", err)
	}
	if man.IsRoot() && !held {
		m.escrowed[from]++
	}
	n.log.Info("key escrowed", "subsys", "keys", "model", hex.EncodeToString(id[:]), "peer", from)
	return &keys.Result{}
}

// escrowedRoots counts the lineage roots of pub whose key this coordinator holds (counted from
// the catalog on first use, then kept up to date). The caller holds m.escrowMu.
func (m *models) escrowedRoots(pub peer.ID) int {
	if m.escrowed == nil {
		m.escrowed = map[peer.ID]int{}
		recs, _ := m.all()
		for _, r := range recs {
			p, err := r.Manifest.PublisherID()
			if err != nil || p == m.n.host.ID() || !r.Manifest.IsRoot() {
				continue
			}
			if has, _ := m.n.store.Has(store.KeyKey(r.ID)); has {
				m.escrowed[p]++
			}
		}
	}
	return m.escrowed[pub]
}

// handleUnlock verifies a payment and releases the key: the payment is recorded as consumed by
// (trainer, lineage) in the same transaction that grants access, so a crash grants once or not
// at all, and a block can never serve two trainers or two lineages.
func (n *Node) handleUnlock(ctx context.Context, from peer.ID, u *keys.Unlock) *keys.Result {
	if len(u.Model) != 32 {
		return refuse(adminrpc.CodeInvalidParams, "model must be a 32-byte ModelID")
	}
	id := content.ModelID(u.Model)
	rec, err := n.models.get(id)
	if err != nil {
		return refuse(adminrpc.CodeNotFound, "the coordinator does not know model %x", id[:6])
	}
	key, err := n.models.keys.get(id)
	if err != nil {
		return refuse(adminrpc.CodeNotFound, "the coordinator holds no key for model %x", id[:6])
	}
	defer key.Wipe()
	// Grants, the memo, the price and the payee all belong to the derived lineage root: a
	// version that is its own root (a fork) can never grant rights on another lineage.
	lineage := rec.Lineage()
	trainer := from.String()
	grantKey := store.GrantKey(lineage, trainer)

	// A trainer that paid for the lineage before gets the key again.
	var g store.Grant
	if err := n.store.Get(grantKey, &g); err == nil || n.publishedLineage(rec, lineage, from) {
		return &keys.Result{Key: append([]byte(nil), key[:]...)}
	}
	if u.Ledger == "" {
		return refuse(adminrpc.CodeNotUnlocked, "no payment from you for this model's lineage is on record: pay for it first")
	}
	if u.Ledger != n.cfg.ICP.LedgerCanisterID {
		return refuse(adminrpc.CodePaymentInvalid, "payments go to ledger %s, not %s", n.cfg.ICP.LedgerCanisterID, u.Ledger)
	}
	payer, err := principal.Decode(u.Payer)
	if err != nil {
		return refuse(adminrpc.CodeInvalidParams, "payer %q is not a principal", u.Payer)
	}
	// A block consumed by someone else is refused before the ledger is asked.
	var used store.PaymentRecord
	if err := n.store.Get(store.PaymentKey(u.Ledger, u.Block), &used); err == nil && (used.Trainer != trainer || string(used.Lineage) != string(lineage[:])) {
		return refuse(adminrpc.CodePaymentUsed, "block %d already paid for another trainer or model", u.Block)
	}
	c, err := n.ledger.client()
	if err != nil {
		return refuse(adminrpc.CodeUnavailable, "the coordinator cannot reach the ledger: %v", err)
	}
	rootPayee := rec.Payee()
	payee, err := principal.Decode(rootPayee.Owner)
	if err != nil {
		return refuse(adminrpc.CodeIntegrity, "manifest payee is not a principal")
	}
	want := icp.Expect{
		Payer: icp.Account{Owner: payer}, Payee: icp.Account{Owner: payee, Subaccount: subOf(rootPayee.Subaccount)},
		MinAmount: rec.Price(), Memo: keys.Memo(lineage, from),
	}
	// Each verification queries the ledger: a per-peer budget bounds what a peer can make us fetch.
	if !n.ledger.allowVerify(from) {
		return refuse(adminrpc.CodeUnavailable, "too many payment verifications from you: retry in a minute")
	}
	vctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pay, err := c.VerifyPayment(vctx, u.Block, want)
	switch {
	case errors.Is(err, icp.ErrInsufficient):
		return refuse(adminrpc.CodePaymentInsufficient, "%v", err)
	case errors.Is(err, icp.ErrWalkLimit):
		return refuse(adminrpc.CodeUnavailable, "%v", err)
	case err != nil:
		return refuse(adminrpc.CodePaymentInvalid, "%v", err)
	}
	crashPoint("unlock-verified") // tests kill the coordinator here: verified, not yet granted
	err = n.store.Update(func(tx *store.Tx) error {
		var prior store.PaymentRecord
		if err := tx.Get(store.PaymentKey(u.Ledger, u.Block), &prior); err == nil && (prior.Trainer != trainer || string(prior.Lineage) != string(lineage[:])) {
			return errPaymentUsed
		}
		now := time.Now().UTC()
		if err := tx.Put(store.PaymentKey(u.Ledger, u.Block), &store.PaymentRecord{Trainer: trainer, Lineage: lineage[:], Amount: pay.Amount.String(), At: now}); err != nil {
			return err
		}
		return tx.Put(grantKey, &store.Grant{Ledger: u.Ledger, Block: u.Block, At: now})
	})
	if errors.Is(err, errPaymentUsed) {
		return refuse(adminrpc.CodePaymentUsed, "block %d already paid for another trainer or model", u.Block)
	}
	if err != nil {
		return refuse(adminrpc.CodeInternal, "record payment: %v", err)
	}
	n.log.Info("key released", "subsys", "keys", "model", hex.EncodeToString(id[:]), "peer", from, "block", u.Block)
	return &keys.Result{Key: append([]byte(nil), key[:]...)}
}

var errPaymentUsed = errors.New("payment used")

// publishedLineage reports whether p published rec or the root of its lineage (derived, and
// which must be lineage): the publisher receives every version aggregated from its model
// without paying, and so does the authorised signer of a version.
func (n *Node) publishedLineage(rec *record, lineage content.ModelID, p peer.ID) bool {
	if rec.Lineage() != lineage {
		return false
	}
	if pub, err := rec.Manifest.PublisherID(); err == nil && pub == p {
		return true
	}
	pub, err := rec.root().Manifest.PublisherID()
	return err == nil && pub == p
}

// crashPoint ends the process at once when CALIFUSION_CRASH_AT names point: a failpoint for
// crash-consistency tests, inert otherwise.
func crashPoint(point string) {
	if os.Getenv("CALIFUSION_CRASH_AT") == point {
		os.Exit(137)
	}
}

// handleProbe tells a trainer, before it pays, whether this coordinator can release the key.
func (n *Node) handleProbe(ctx context.Context, from peer.ID, p *keys.Probe) *keys.Result {
	if len(p.Model) != 32 {
		return refuse(adminrpc.CodeInvalidParams, "model must be a 32-byte ModelID")
	}
	if _, err := n.models.keys.get(content.ModelID(p.Model)); err != nil {
		return refuse(adminrpc.CodeNotFound, "the coordinator holds no key for model %x", p.Model[:6])
	}
	return &keys.Result{}
}

func subOf(b []byte) *[]byte {
	if len(b) == 0 {
		return nil
	}
	return &b
}

// coordinators lists the coordinators this node knows of (from presence), itself first if it is
// one.
func (n *Node) coordinators() []peer.ID {
	var out []peer.ID
	if n.cfg.HasRole(config.RoleCoordinator) {
		out = append(out, n.host.ID())
	}
	n.store.Scan(store.PresencePrefix(), func(k store.Key, decode func(any) error) error {
		var p store.Presence
		if decode(&p) != nil {
			return nil
		}
		for _, r := range p.Roles {
			if r == config.RoleCoordinator {
				if id, err := peer.Decode(string(k[len(store.PresencePrefix()):])); err == nil {
					out = append(out, id)
				}
			}
		}
		return nil
	})
	return out
}

// escrow deposits a freshly published model's key with the coordinators its lineage root
// names, a few at a time (a coordinator that is this node already holds it).
func (n *Node) escrow(ctx context.Context, rec *record, k content.Key) (deposited int) {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, 8)
	)
	for _, c := range rec.root().Manifest.CoordinatorIDs() {
		if c == n.host.ID() {
			deposited++
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if _, err := keys.Request(dctx, n.host, c, keys.PurposeEscrow, &keys.Deposit{Manifest: rec.Signed, Key: k[:]}); err != nil {
				n.log.Warn("escrow key", "subsys", "keys", "peer", c, "model", hex.EncodeToString(rec.ID[:]), "err", err)
				return
			}
			mu.Lock()
			deposited++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return deposited
}
