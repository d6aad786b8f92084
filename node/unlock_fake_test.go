package node

import (
	"crypto/rand"
	"log/slog"
	"testing"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fakeCoordinator is a coordinator node with a store, a keyring holding the key of one lineage
// root (price 1, payee aaaaa-aa) and a fake ledger to verify payments on.
type fakeCoordinator struct {
	n         *Node
	l         *fakeLedger
	r         *record
	key       content.Key
	publisher peer.ID
	payee     icp.Account
}

func newFakeCoordinator(t *testing.T) *fakeCoordinator {
	t.Helper()
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	master := make([]byte, 32)
	rand.Read(master)
	kr, err := newKeyring(master, st)
	if err != nil {
		t.Fatal(err)
	}
	l := newFakeLedger(0)
	cfg := config.Default()
	cfg.ICP.LedgerCanisterID = l.Ledger().Encode()
	n := &Node{cfg: cfg, store: st, log: slog.New(slog.DiscardHandler)}
	n.ledger = &ledger{n: n, c: l}
	n.models = &models{n: n, keys: kr}

	pub, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	pubID, _ := peer.IDFromPrivateKey(pub)
	k, _ := content.NewKey()
	signed := manifestBy(t, pub, k)
	man, id, err := content.Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	r := &record{ID: id, Manifest: man, Signed: signed}
	n.models.verified.Store(id, r)
	if err := st.Update(func(tx *store.Tx) error { return kr.put(tx, id, k) }); err != nil {
		t.Fatal(err)
	}
	owner, err := principal.Decode(man.Payee.Owner)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeCoordinator{n: n, l: l, r: r, key: k, publisher: pubID, payee: icp.Account{Owner: owner}}
}

// trainer is a trainer's peer ID and ICP account.
type trainer struct {
	id   peer.ID
	acct icp.Account
}

func newTrainer(t *testing.T, name string) trainer {
	t.Helper()
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	id, _ := peer.IDFromPrivateKey(priv)
	return trainer{id: id, acct: icp.Account{Owner: fakePrincipal(name)}}
}

// unlock asks c to release the key to tr for block, paid on c's ledger.
func (c *fakeCoordinator) unlock(t *testing.T, tr trainer, block uint64) *keys.Result {
	t.Helper()
	return c.n.handleUnlock(t.Context(), tr.id, &keys.Unlock{Model: c.r.ID[:], Ledger: c.l.Ledger().Encode(), Payer: tr.acct.Owner.Encode(), Block: block})
}

// TestFakeUnlockVerifiesThePayment: the coordinator releases the key only for a block that pays
// the lineage's price to its payee from the claimed payer with the memo binding lineage and
// trainer; it grants once per block, and a trainer that paid gets the key again without paying.
func TestFakeUnlockVerifiesThePayment(t *testing.T) {
	c := newFakeCoordinator(t)
	alice, bob := newTrainer(t, "alice"), newTrainer(t, "bob")
	memo := keys.Memo(c.r.Lineage(), alice.id)
	other := icp.Account{Owner: fakePrincipal("someone else")}

	refusals := []struct {
		name  string
		block uint64
		code  int
	}{
		{"wrong payer", c.l.add(other, c.payee, 1, memo, 0), adminrpc.CodePaymentInvalid},
		{"wrong payee", c.l.add(alice.acct, other, 1, memo, 0), adminrpc.CodePaymentInvalid},
		{"memo for another trainer", c.l.add(alice.acct, c.payee, 1, keys.Memo(c.r.Lineage(), bob.id), 0), adminrpc.CodePaymentInvalid},
		{"memo for another lineage", c.l.add(alice.acct, c.payee, 1, keys.Memo(content.ModelID{9}, alice.id), 0), adminrpc.CodePaymentInvalid},
		{"below the price", c.l.add(alice.acct, c.payee, 0, memo, 0), adminrpc.CodePaymentInsufficient},
		{"block not on the ledger", 99, adminrpc.CodePaymentInvalid},
	}
	for _, tt := range refusals {
		if res := c.unlock(t, alice, tt.block); res.Code != tt.code || res.Key != nil {
			t.Errorf("%s: handleUnlock = code %d %q, want code %d and no key", tt.name, res.Code, res.Message, tt.code)
		}
	}
	if res := c.n.handleUnlock(t.Context(), alice.id, &keys.Unlock{Model: c.r.ID[:]}); res.Code != adminrpc.CodeNotUnlocked {
		t.Errorf("handleUnlock without a payment = code %d, want %d", res.Code, adminrpc.CodeNotUnlocked)
	}
	if res := c.n.handleUnlock(t.Context(), alice.id, &keys.Unlock{Model: c.r.ID[:], Ledger: fakePrincipal("elsewhere").Encode(), Payer: alice.acct.Owner.Encode()}); res.Code != adminrpc.CodePaymentInvalid {
		t.Errorf("handleUnlock on another ledger = code %d, want %d", res.Code, adminrpc.CodePaymentInvalid)
	}

	good := c.l.add(alice.acct, c.payee, 1, memo, 0)
	res := c.unlock(t, alice, good)
	if res.Code != 0 || content.Key(res.Key) != c.key {
		t.Fatalf("handleUnlock(valid payment) = code %d %q, want the key", res.Code, res.Message)
	}
	var rec store.PaymentRecord
	if err := c.n.store.Get(store.PaymentKey(c.l.Ledger().Encode(), good), &rec); err != nil || rec.Trainer != alice.id.String() || rec.Amount != "1" {
		t.Errorf("payment record = %+v, %v; want consumed by alice for 1", rec, err)
	}
	verifies := c.l.verifies

	// The block serves one trainer: bob is refused before the ledger is asked.
	if res := c.unlock(t, bob, good); res.Code != adminrpc.CodePaymentUsed || res.Key != nil {
		t.Errorf("handleUnlock(bob, alice's block) = code %d, want %d", res.Code, adminrpc.CodePaymentUsed)
	}
	// Alice paid: she gets the key again, even without naming a payment, with no verification.
	for _, u := range []*keys.Unlock{{Model: c.r.ID[:]}, {Model: c.r.ID[:], Ledger: c.l.Ledger().Encode(), Payer: alice.acct.Owner.Encode(), Block: good}} {
		if res := c.n.handleUnlock(t.Context(), alice.id, u); res.Code != 0 || content.Key(res.Key) != c.key {
			t.Errorf("handleUnlock(alice again, %+v) = code %d %q, want the key", u, res.Code, res.Message)
		}
	}
	if c.l.verifies != verifies {
		t.Errorf("ledger verifications = %d, want %d: a used block or a granted lineage needs none", c.l.verifies, verifies)
	}
	// The publisher gets its own model without paying.
	if res := c.n.handleUnlock(t.Context(), c.publisher, &keys.Unlock{Model: c.r.ID[:]}); res.Code != 0 || content.Key(res.Key) != c.key {
		t.Errorf("handleUnlock(publisher) = code %d %q, want the key", res.Code, res.Message)
	}
}

// TestFakeUnlockLedgerTrouble: a verification the ledger cannot complete is unavailable (retry),
// and a peer past its verification budget is refused before the ledger is asked.
func TestFakeUnlockLedgerTrouble(t *testing.T) {
	c := newFakeCoordinator(t)
	alice := newTrainer(t, "alice")
	block := c.l.add(alice.acct, c.payee, 1, keys.Memo(c.r.Lineage(), alice.id), 0)
	c.l.verifyErr = icp.ErrWalkLimit
	if res := c.unlock(t, alice, block); res.Code != adminrpc.CodeUnavailable || res.Key != nil {
		t.Errorf("handleUnlock(walk limit) = code %d, want %d", res.Code, adminrpc.CodeUnavailable)
	}
	if has, _ := c.n.store.Has(store.GrantKey(c.r.Lineage(), alice.id.String())); has {
		t.Errorf("a grant was recorded for a payment that did not verify")
	}
	c.l.verifyErr = nil

	c.n.cfg.ICP.VerificationsPerPeer = 2
	greedy := newTrainer(t, "greedy")
	for i := 0; i < 2; i++ {
		if res := c.unlock(t, greedy, 99); res.Code != adminrpc.CodePaymentInvalid {
			t.Fatalf("handleUnlock #%d = code %d, want %d", i+1, res.Code, adminrpc.CodePaymentInvalid)
		}
	}
	before := c.l.verifies
	if res := c.unlock(t, greedy, 99); res.Code != adminrpc.CodeUnavailable || c.l.verifies != before {
		t.Errorf("handleUnlock past the budget = code %d after %d verifications, want %d and none", res.Code, c.l.verifies-before, adminrpc.CodeUnavailable)
	}
	if res := c.unlock(t, alice, block); res.Code != 0 {
		t.Errorf("handleUnlock(alice, within her budget) = code %d %q, want the key", res.Code, res.Message)
	}
}
