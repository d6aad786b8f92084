package keys

import (
	"crypto/rand"
	"testing"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/ledger/ledgertest"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/icp"
	keyswire "github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fakeCoordinator is a coordinator with a store, a keyring holding the key of one lineage root
// (price 1, payee aaaaa-aa), a catalog holding the root, and a fake ledger to verify payments on.
type fakeCoordinator struct {
	c         *Coordinator
	st        *store.Store
	ls        *fakeLedgerSvc
	l         *ledgertest.Fake
	r         *catalog.Record
	key       content.Key
	publisher peer.ID
	payee     icp.Account
}

func newFakeCoordinator(t *testing.T) *fakeCoordinator {
	t.Helper()
	st := newStore(t)
	kr := newKeyringOn(t, st)
	l := ledgertest.NewFake(0)
	ls := newFakeLedgerSvc(l, 10)
	cat := newFakeCatalog()
	c := NewCoordinator(Config{Self: contenttest.NewSigner(t).ID}, Deps{Store: st, Keys: kr, Catalog: cat, Ledger: ls})

	pub, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	pubID, _ := peer.IDFromPrivateKey(pub)
	k, _ := content.NewKey()
	r := recordOf(t, manifestBy(t, pub, k))
	cat.put(r)
	if err := st.Update(func(tx *store.Tx) error { return kr.Put(tx, r.ID, k) }); err != nil {
		t.Fatal(err)
	}
	owner, err := principal.Decode(r.Manifest.Payee.Owner)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeCoordinator{c: c, st: st, ls: ls, l: l, r: r, key: k, publisher: pubID, payee: icp.Account{Owner: owner}}
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
	return trainer{id: id, acct: icp.Account{Owner: ledgertest.Principal(name)}}
}

// unlock asks c to release the key to tr for block, paid on c's ledger.
func (c *fakeCoordinator) unlock(t *testing.T, tr trainer, block uint64) *keyswire.Result {
	t.Helper()
	return c.c.Unlock(t.Context(), tr.id, &keyswire.Unlock{Model: c.r.ID[:], Ledger: c.l.Ledger().Encode(), Payer: tr.acct.Owner.Encode(), Block: block})
}

// TestFakeUnlockVerifiesThePayment: the coordinator releases the key only for a block that pays
// the lineage's price to its payee from the claimed payer with the memo binding lineage and
// trainer; it grants once per block, and a trainer that paid gets the key again without paying.
func TestFakeUnlockVerifiesThePayment(t *testing.T) {
	c := newFakeCoordinator(t)
	alice, bob := newTrainer(t, "alice"), newTrainer(t, "bob")
	memo := keyswire.Memo(c.r.Lineage(), alice.id)
	other := icp.Account{Owner: ledgertest.Principal("someone else")}

	refusals := []struct {
		name  string
		block uint64
		code  int
	}{
		{"wrong payer", c.l.Add(other, c.payee, 1, memo, 0), apierr.PaymentInvalid},
		{"wrong payee", c.l.Add(alice.acct, other, 1, memo, 0), apierr.PaymentInvalid},
		{"memo for another trainer", c.l.Add(alice.acct, c.payee, 1, keyswire.Memo(c.r.Lineage(), bob.id), 0), apierr.PaymentInvalid},
		{"memo for another lineage", c.l.Add(alice.acct, c.payee, 1, keyswire.Memo(content.ModelID{9}, alice.id), 0), apierr.PaymentInvalid},
		{"below the price", c.l.Add(alice.acct, c.payee, 0, memo, 0), apierr.PaymentInsufficient},
		{"block not on the ledger", 99, apierr.PaymentInvalid},
	}
	for _, tt := range refusals {
		if res := c.unlock(t, alice, tt.block); res.Code != tt.code || res.Key != nil {
			t.Errorf("%s: Unlock = code %d %q, want code %d and no key", tt.name, res.Code, res.Message, tt.code)
		}
	}
	if res := c.c.Unlock(t.Context(), alice.id, &keyswire.Unlock{Model: c.r.ID[:]}); res.Code != apierr.NotUnlocked {
		t.Errorf("Unlock without a payment = code %d, want %d", res.Code, apierr.NotUnlocked)
	}
	if res := c.c.Unlock(t.Context(), alice.id, &keyswire.Unlock{Model: c.r.ID[:], Ledger: ledgertest.Principal("elsewhere").Encode(), Payer: alice.acct.Owner.Encode()}); res.Code != apierr.PaymentInvalid {
		t.Errorf("Unlock on another ledger = code %d, want %d", res.Code, apierr.PaymentInvalid)
	}

	good := c.l.Add(alice.acct, c.payee, 1, memo, 0)
	res := c.unlock(t, alice, good)
	if res.Code != 0 || content.Key(res.Key) != c.key {
		t.Fatalf("Unlock(valid payment) = code %d %q, want the key", res.Code, res.Message)
	}
	var rec store.PaymentRecord
	if err := c.st.Get(store.PaymentKey(c.l.Ledger().Encode(), good), &rec); err != nil || rec.Trainer != alice.id.String() || rec.Amount != "1" {
		t.Errorf("payment record = %+v, %v; want consumed by alice for 1", rec, err)
	}
	verifies := c.l.Verifies()

	// The block serves one trainer: bob is refused before the ledger is asked.
	if res := c.unlock(t, bob, good); res.Code != apierr.PaymentUsed || res.Key != nil {
		t.Errorf("Unlock(bob, alice's block) = code %d, want %d", res.Code, apierr.PaymentUsed)
	}
	// Alice paid: she gets the key again, even without naming a payment, with no verification.
	for _, u := range []*keyswire.Unlock{{Model: c.r.ID[:]}, {Model: c.r.ID[:], Ledger: c.l.Ledger().Encode(), Payer: alice.acct.Owner.Encode(), Block: good}} {
		if res := c.c.Unlock(t.Context(), alice.id, u); res.Code != 0 || content.Key(res.Key) != c.key {
			t.Errorf("Unlock(alice again, %+v) = code %d %q, want the key", u, res.Code, res.Message)
		}
	}
	if c.l.Verifies() != verifies {
		t.Errorf("ledger verifications = %d, want %d: a used block or a granted lineage needs none", c.l.Verifies(), verifies)
	}
	// The publisher gets its own model without paying.
	if res := c.c.Unlock(t.Context(), c.publisher, &keyswire.Unlock{Model: c.r.ID[:]}); res.Code != 0 || content.Key(res.Key) != c.key {
		t.Errorf("Unlock(publisher) = code %d %q, want the key", res.Code, res.Message)
	}
}

// TestFakeUnlockLedgerTrouble: a verification the ledger cannot complete is unavailable (retry),
// and a peer past its verification budget is refused before the ledger is asked.
func TestFakeUnlockLedgerTrouble(t *testing.T) {
	c := newFakeCoordinator(t)
	alice := newTrainer(t, "alice")
	block := c.l.Add(alice.acct, c.payee, 1, keyswire.Memo(c.r.Lineage(), alice.id), 0)
	c.l.SetVerifyErr(icp.ErrWalkLimit)
	if res := c.unlock(t, alice, block); res.Code != apierr.Unavailable || res.Key != nil {
		t.Errorf("Unlock(walk limit) = code %d, want %d", res.Code, apierr.Unavailable)
	}
	if has, _ := c.st.Has(store.GrantKey(c.r.Lineage(), alice.id.String())); has {
		t.Errorf("a grant was recorded for a payment that did not verify")
	}
	c.l.SetVerifyErr(nil)

	c.ls.setBudget(2) // icp.verifications_per_peer = 2
	greedy := newTrainer(t, "greedy")
	for i := 0; i < 2; i++ {
		if res := c.unlock(t, greedy, 99); res.Code != apierr.PaymentInvalid {
			t.Fatalf("Unlock #%d = code %d, want %d", i+1, res.Code, apierr.PaymentInvalid)
		}
	}
	before := c.l.Verifies()
	if res := c.unlock(t, greedy, 99); res.Code != apierr.Unavailable || c.l.Verifies() != before {
		t.Errorf("Unlock past the budget = code %d after %d verifications, want %d and none", res.Code, c.l.Verifies()-before, apierr.Unavailable)
	}
	if res := c.unlock(t, alice, block); res.Code != 0 {
		t.Errorf("Unlock(alice, within her budget) = code %d %q, want the key", res.Code, res.Message)
	}
}
