package keys

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/ledger/ledgertest"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/kex"
	keyswire "github.com/califusion/califusion/protocols/keys"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// unlockNet is a publisher, a coordinator holding the key of the publisher's lineage root r
// (price 1, payee aaaaa-aa), and a trainer host, sharing one fake ledger the trainer pays from.
type unlockNet struct {
	pub, coordSigner, trainer contenttest.Signer
	hosts                     []host.Host // publisher, coordinator, trainer, and any extras
	coord                     *testCoordinator
	l                         *ledgertest.Fake
	r                         *catalog.Record
	key                       content.Key
}

func newUnlockNet(t *testing.T, extra ...contenttest.Signer) *unlockNet {
	t.Helper()
	u := &unlockNet{pub: contenttest.NewSigner(t), coordSigner: contenttest.NewSigner(t), trainer: contenttest.NewSigner(t), l: ledgertest.NewFake(1_000)}
	u.hosts = mesh(t, append([]contenttest.Signer{u.pub, u.coordSigner, u.trainer}, extra...)...)
	u.coord = startCoordinator(t, u.hosts[1], u.l)
	u.key, _ = content.NewKey()
	u.r = recordOf(t, manifestBy(t, u.pub.Priv, u.key, u.coord.id))
	u.coord.hold(t, u.r, u.key)
	return u
}

// client returns a keys client on host h (i in u.hosts) with a fresh store, paying from the fake
// ledger, that knows coords.
func (u *unlockNet) client(t *testing.T, i int, an *fakeAnchoring, coords ...peer.ID) (*Client, *Keyring) {
	t.Helper()
	st := newStore(t)
	kr := newKeyringOn(t, st)
	if an == nil {
		an = newFakeAnchoring(false)
	}
	h := u.hosts[i]
	return NewClient(Config{Self: h.ID()}, Deps{Store: st, Keys: kr, Host: h, Ledger: newFakeLedgerSvc(u.l, 10), Anchoring: an, Directory: fakeDirectory(coords)}), kr
}

// TestUnlockPaysOnceAndKeepsTheKey: Unlock probes the named coordinator, asks for a key the node
// is not yet entitled to, pays the lineage's price with the binding memo, presents the payment
// and keeps the released key; a node that paid unlocks (or claims) again without paying.
func TestUnlockPaysOnceAndKeepsTheKey(t *testing.T) {
	claimer := contenttest.NewSigner(t) // claims the coordinator role; the lineage does not name it
	u := newUnlockNet(t, claimer)
	c, kr := u.client(t, 2, nil, claimer.ID, u.coord.id)
	if err := c.Unlock(t.Context(), u.r, nil, ""); err != nil {
		t.Fatalf("Unlock = %v, want the key", err)
	}
	if k, err := kr.Get(u.r.ID); err != nil || k != u.key {
		t.Errorf("key after Unlock = %x, %v; want the published key", k[:4], err)
	}
	calls := u.l.Calls()
	if len(calls) != 1 || calls[0].Amount.Int64() != 1 || string(calls[0].Memo) != string(keyswire.Memo(u.r.Lineage(), u.trainer.ID)) {
		t.Fatalf("transfers after Unlock = %+v, want one of the price with the trainer's memo", calls)
	}
	if !u.coord.Entitled(u.r, u.trainer.ID) {
		t.Errorf("the coordinator recorded no grant for the trainer")
	}
	if err := c.Unlock(t.Context(), u.r, nil, ""); err != nil || len(u.l.Calls()) != 1 {
		t.Errorf("second Unlock = %v after %d transfers, want nil and no new transfer", err, len(u.l.Calls()))
	}
	// The same trainer on a fresh store: entitled, so the key comes without paying.
	again, kr2 := u.client(t, 2, nil, u.coord.id)
	if err := again.Unlock(t.Context(), u.r, nil, ""); err != nil || len(u.l.Calls()) != 1 {
		t.Errorf("Unlock by an entitled trainer = %v after %d transfers, want nil and no new transfer", err, len(u.l.Calls()))
	}
	if !kr2.Has(u.r.ID) {
		t.Errorf("the entitled trainer keeps no key")
	}
	claim, kr3 := u.client(t, 2, nil)
	if err := claim.Claim(t.Context(), u.r, []peer.ID{u.coord.id}); err != nil || !kr3.Has(u.r.ID) {
		t.Errorf("Claim by a trainer that paid = %v (key kept: %v), want the key", err, kr3.Has(u.r.ID))
	}
}

// TestUnlockWithABlock: a payment made elsewhere is presented as is, on the configured ledger.
func TestUnlockWithABlock(t *testing.T) {
	u := newUnlockNet(t, contenttest.NewSigner(t))
	c, kr := u.client(t, 2, nil, u.coord.id)
	payee := icp.Account{Owner: mustPrincipal(t, "aaaaa-aa")}
	block := u.l.Add(icp.Account{Owner: u.l.Principal()}, payee, 1, keyswire.Memo(u.r.Lineage(), u.trainer.ID), 0)
	if err := c.Unlock(t.Context(), u.r, &block, ""); err != nil || !kr.Has(u.r.ID) {
		t.Fatalf("Unlock(block %d) = %v, want the key", block, err)
	}
	if len(u.l.Calls()) != 0 {
		t.Errorf("Unlock with a block made %d transfers, want none", len(u.l.Calls()))
	}
	// A block on another ledger is the coordinator's refusal, reported with its code.
	bob, bobKeys := u.client(t, 3, nil, u.coord.id)
	if err := bob.Unlock(t.Context(), u.r, &block, ledgertest.Principal("elsewhere").Encode()); apierr.CodeOf(err) != apierr.PaymentInvalid || bobKeys.Has(u.r.ID) {
		t.Errorf("Unlock(block on another ledger) = %v, want code %d and no key", err, apierr.PaymentInvalid)
	}
	// The trainer's block serves no one else.
	if err := bob.Unlock(t.Context(), u.r, &block, ""); apierr.CodeOf(err) != apierr.PaymentUsed {
		t.Errorf("Unlock(another trainer's block) = %v, want code %d", err, apierr.PaymentUsed)
	}
}

// TestUnlockRefusals: nothing is paid when no coordinator the lineage names holds the key, under
// anchoring "require" without a verified anchor, or when the ledger cannot be reached.
func TestUnlockRefusals(t *testing.T) {
	claimer := contenttest.NewSigner(t)
	u := newUnlockNet(t, claimer)

	// Only a coordinator the lineage does not name is known.
	c, _ := u.client(t, 2, nil, claimer.ID)
	err := c.Unlock(t.Context(), u.r, nil, "")
	if apierr.CodeOf(err) != apierr.NotFound || !strings.Contains(err.Error(), "nothing was paid") {
		t.Errorf("Unlock without a named holder = %v, want code %d, nothing was paid", err, apierr.NotFound)
	}

	// Anchoring require, the anchor missing.
	an := newFakeAnchoring(true)
	c, _ = u.client(t, 2, an, u.coord.id)
	if err := c.Unlock(t.Context(), u.r, nil, ""); apierr.CodeOf(err) != apierr.Integrity || an.checks != 1 {
		t.Errorf("Unlock under require without an anchor = %v (%d checks), want code %d", err, an.checks, apierr.Integrity)
	}
	block := uint64(0)
	if err := c.Unlock(t.Context(), u.r, &block, ""); apierr.CodeOf(err) != apierr.Integrity {
		t.Errorf("Unlock(block) under require without an anchor = %v, want code %d", err, apierr.Integrity)
	}

	// The ledger is unreachable.
	c, _ = u.client(t, 2, nil, u.coord.id)
	c.deps.Ledger.(*fakeLedgerSvc).err = &apierr.Error{Code: apierr.Unavailable, Message: "the ICP replica could not be reached: check icp.replica_url and icp.fetch_root_key", Data: "connection refused"}
	var ae *apierr.Error
	if err := c.Unlock(t.Context(), u.r, nil, ""); !errors.As(err, &ae) || ae.Code != apierr.Unavailable || ae.Message != "the ICP replica could not be reached: check icp.replica_url and icp.fetch_root_key" || ae.Data != "connection refused" {
		t.Errorf("Unlock with the ledger down = %#v, want code %d with the cause as data", err, apierr.Unavailable)
	}
	if n := len(u.l.Calls()); n != 0 {
		t.Errorf("refused unlocks made %d transfers, want none", n)
	}
}

// TestClaim: Claim asks for a key this node is entitled to without paying: the publisher gets
// it; a trainer that did not pay is refused with not_unlocked; a key already held needs no
// coordinator.
func TestClaim(t *testing.T) {
	u := newUnlockNet(t)
	trainer, _ := u.client(t, 2, nil)
	if err := trainer.Claim(t.Context(), u.r, []peer.ID{u.coord.id}); apierr.CodeOf(err) != apierr.NotUnlocked {
		t.Errorf("Claim by a trainer that did not pay = %v, want code %d", err, apierr.NotUnlocked)
	}
	if err := trainer.Claim(t.Context(), u.r, nil); apierr.CodeOf(err) != apierr.Unavailable {
		t.Errorf("Claim without coordinators = %v, want code %d", err, apierr.Unavailable)
	}
	// The coordinator itself is skipped: it cannot ask itself.
	self, _ := u.client(t, 1, nil)
	if err := self.Claim(t.Context(), u.r, []peer.ID{u.coord.id}); apierr.CodeOf(err) != apierr.Unavailable {
		t.Errorf("Claim asking only itself = %v, want code %d", err, apierr.Unavailable)
	}
	pub, kr := u.client(t, 0, nil)
	if err := pub.Claim(t.Context(), u.r, []peer.ID{u.coord.id}); err != nil {
		t.Fatalf("Claim by the publisher = %v, want the key", err)
	}
	if k, err := kr.Get(u.r.ID); err != nil || k != u.key {
		t.Errorf("key after Claim = %x, %v; want the published key", k[:4], err)
	}
	if err := pub.Claim(t.Context(), u.r, nil); err != nil {
		t.Errorf("Claim of a key held = %v, want nil without asking", err)
	}
	if len(u.l.Calls()) != 0 {
		t.Errorf("Claim made %d transfers, want none", len(u.l.Calls()))
	}
}

// TestClaimFromHostileCoordinators: a coordinator that lacks the key (not_found) or cannot be
// reached is passed over for the next; one that releases a key that does not match the
// manifest's commitment, or a malformed one, is an integrity error and nothing is kept.
func TestClaimFromHostileCoordinators(t *testing.T) {
	liar, short, empty, gone := contenttest.NewSigner(t), contenttest.NewSigner(t), contenttest.NewSigner(t), contenttest.NewSigner(t)
	u := newUnlockNet(t, liar, short, empty)
	serve := func(h host.Host, res *keyswire.Result) {
		srv := kex.NewServer(t.Context(), h, slog.New(slog.DiscardHandler))
		t.Cleanup(func() { srv.Close() })
		keyswire.NewServer(srv, keyswire.Handlers{Unlock: func(context.Context, peer.ID, *keyswire.Unlock) *keyswire.Result { return res }})
	}
	wrong, _ := content.NewKey()
	serve(u.hosts[3], &keyswire.Result{Key: wrong[:]})
	serve(u.hosts[4], &keyswire.Result{Key: []byte("short")})
	serve(u.hosts[5], &keyswire.Result{Code: apierr.NotFound, Message: "no key here"})

	pub, kr := u.client(t, 0, nil)
	for _, tt := range []struct {
		name   string
		coords []peer.ID
		msg    string
	}{
		{"key does not match", []peer.ID{liar.ID}, "does not match the manifest's key commitment"},
		{"malformed key", []peer.ID{short.ID}, "malformed key"},
	} {
		err := pub.Claim(t.Context(), u.r, tt.coords)
		if apierr.CodeOf(err) != apierr.Integrity || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: Claim = %v, want code %d (%s)", tt.name, err, apierr.Integrity, tt.msg)
		}
		if kr.Has(u.r.ID) {
			t.Fatalf("%s: a bad key was kept", tt.name)
		}
	}
	if err := pub.Claim(t.Context(), u.r, []peer.ID{empty.ID, gone.ID}); apierr.CodeOf(err) != apierr.Unavailable || !strings.Contains(err.Error(), "could not be reached") {
		t.Errorf("Claim from one without the key and one unreachable = %v, want the last: unreachable", err)
	}
	if err := pub.Claim(t.Context(), u.r, []peer.ID{empty.ID, gone.ID, u.coord.id}); err != nil || !kr.Has(u.r.ID) {
		t.Errorf("Claim passing over two coordinators = %v, want the key from the third", err)
	}
}

// TestEscrow: the publisher deposits a new model's key with every coordinator its lineage root
// names; itself counts as holding it, an unreachable one does not.
func TestEscrow(t *testing.T) {
	gone := contenttest.NewSigner(t)
	u := newUnlockNet(t)
	k, _ := content.NewKey()
	r := recordOf(t, manifestBy(t, u.pub.Priv, k, u.pub.ID, u.coord.id, gone.ID))
	pub, _ := u.client(t, 0, nil)
	if got, _ := pub.Escrow(t.Context(), r, k); got != 2 {
		t.Errorf("Escrow = %d, want 2 (this node and the coordinator)", got)
	}
	if got, err := u.coord.keys.Get(r.ID); err != nil || got != k {
		t.Errorf("coordinator's key after Escrow = %v, want the deposited one", err)
	}
	if !u.coord.catalog.has(r.ID) {
		t.Errorf("the coordinator did not add the escrowed model to its catalog")
	}
}

func mustPrincipal(t *testing.T, s string) principal.Principal {
	t.Helper()
	p, err := principal.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
