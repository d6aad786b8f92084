package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/protocols/apierr"
	keyswire "github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// depositor returns a function that deposits a key from h with coordinator c over the network.
func depositor(t *testing.T, h host.Host, c peer.ID) func([]byte, content.Key) error {
	return func(manifest []byte, k content.Key) error {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := keyswire.Request(ctx, h, c, keyswire.PurposeEscrow, &keyswire.Deposit{Manifest: manifest, Key: k[:]})
		return err
	}
}

func codeOf(err error) int {
	var refusal *keyswire.Error
	if errors.As(err, &refusal) {
		return refusal.Code
	}
	return 0
}

func TestDepositChecks(t *testing.T) {
	coordSigner, me, stranger := contenttest.NewSigner(t), contenttest.NewSigner(t), contenttest.NewSigner(t)
	hs := mesh(t, coordSigner, me)
	coord := startCoordinator(t, hs[0], nil)
	deposit := depositor(t, hs[1], coord.id)
	priv := me.Priv
	k1, _ := content.NewKey()
	k2, _ := content.NewKey()
	k3, _ := content.NewKey()
	other := contenttest.NewSigner(t).Priv
	here := coord.id
	validRoot := manifestBy(t, priv, k1, here)
	rootID := content.ModelID(sha256.Sum256(validRoot))
	var nowhere content.ModelID
	rand.Read(nowhere[:])
	tests := []struct {
		name     string
		manifest []byte
		key      content.Key
		code     int
	}{
		{"key does not match the commitment", manifestBy(t, priv, k1, here), k2, apierr.Integrity},
		{"depositor is not the publisher", manifestBy(t, other, k1, here), k1, apierr.Integrity},
		{"manifest does not verify", []byte("garbage"), k1, apierr.Integrity},
		{"root that does not name this coordinator", manifestBy(t, priv, k1, stranger.ID), k1, apierr.Role},
		{"root that names no coordinator", manifestBy(t, priv, k1), k1, apierr.Role},
		{"valid deposit", validRoot, k1, 0},
		{"child whose parent is unknown", me.Signed(t, contenttest.Version{Parent: &nowhere, Lineage: &nowhere, Key: k3}), k3, apierr.NotFound},
		{"child claiming another's lineage", me.Signed(t, contenttest.Version{Parent: &rootID, Lineage: &nowhere, Key: k3}), k3, apierr.Integrity},
	}
	for _, tt := range tests {
		err := deposit(tt.manifest, tt.key)
		switch {
		case tt.code == 0 && err != nil:
			t.Errorf("%s: deposit = %v, want success", tt.name, err)
		case tt.code != 0 && codeOf(err) != tt.code:
			t.Errorf("%s: deposit = %v, want code %d", tt.name, err, tt.code)
		}
	}
	recs, _ := coord.catalog.All()
	held := 0
	for _, r := range recs {
		if k, err := coord.keys.Get(r.ID); err == nil {
			if k != k1 {
				t.Errorf("coordinator holds key %x for %x, want the deposited one", k[:4], r.ID[:4])
			}
			held++
		}
	}
	if held != 1 {
		t.Errorf("coordinator holds %d keys, want exactly the one valid deposit", held)
	}
	// The same peer soon runs out of deposits.
	limited := false
	for range depositBurst + 1 {
		if err := deposit(validRoot, k1); codeOf(err) == apierr.Unavailable {
			limited = true
			break
		}
	}
	if !limited {
		t.Errorf("%d deposits in a row were never rate-limited", depositBurst+1)
	}
}

// A stranger's forged version of a deposited lineage is refused, a named coordinator's version is
// kept, and one publisher escrows at most maxEscrowedRoots lineages.
func TestDepositLineageRules(t *testing.T) {
	oldCap, oldBurst := maxEscrowedRoots, depositBurst
	maxEscrowedRoots, depositBurst = 2, 100
	t.Cleanup(func() { maxEscrowedRoots, depositBurst = oldCap, oldBurst })
	coordSigner, pub, other, attacker := contenttest.NewSigner(t), contenttest.NewSigner(t), contenttest.NewSigner(t), contenttest.NewSigner(t)
	hs := mesh(t, coordSigner, pub, other, attacker)
	coord := startCoordinator(t, hs[0], nil)
	here := coord.id
	depPub, depOther, depAttacker := depositor(t, hs[1], here), depositor(t, hs[2], here), depositor(t, hs[3], here)
	k, _ := content.NewKey()
	rootSigned, root := pub.Sign(t, contenttest.Version{Coords: []peer.ID{here, other.ID}, Key: k})
	if err := depPub(rootSigned, k); err != nil {
		t.Fatal(err)
	}
	forged, forgedID := attacker.Sign(t, contenttest.Version{Parent: &root, Lineage: &root, Price: "1", Key: k})
	if err := depAttacker(forged, k); codeOf(err) != apierr.Integrity {
		t.Errorf("deposit of a stranger's version of the lineage = %v, want code %d", err, apierr.Integrity)
	}
	if coord.catalog.has(forgedID) {
		t.Errorf("the forged version is in the coordinator's catalog")
	}
	k2, _ := content.NewKey()
	agg, aggID := other.Sign(t, contenttest.Version{Parent: &root, Lineage: &root, Key: k2})
	if err := depOther(agg, k2); err != nil {
		t.Errorf("deposit of a version by a named coordinator = %v, want success", err)
	}
	if r, err := coord.catalog.Get(aggID); err != nil || r.Lineage() != root {
		t.Errorf("named coordinator's version = %v, %v; want lineage %x", r, err, root)
	}
	k3, _ := content.NewKey()
	second := pub.Signed(t, contenttest.Version{Coords: []peer.ID{here}, Key: k3})
	if err := depPub(second, k3); err != nil {
		t.Errorf("deposit of a second lineage = %v", err)
	}
	if err := depPub(second, k3); err != nil {
		t.Errorf("deposit of the second lineage again = %v, want success (not counted twice)", err)
	}
	third := pub.Signed(t, contenttest.Version{Coords: []peer.ID{here}, Key: k3})
	if err := depPub(third, k3); codeOf(err) != apierr.Conflict {
		t.Errorf("deposit of a third lineage with a cap of 2 = %v, want code %d", err, apierr.Conflict)
	}
}

// TestEscrowedRootsCountedFromTheCatalog: a coordinator that restarts counts the lineage roots
// it holds keys for from its catalog (its own are exempt), so the cap holds across restarts.
func TestEscrowedRootsCountedFromTheCatalog(t *testing.T) {
	oldCap := maxEscrowedRoots
	maxEscrowedRoots = 1
	t.Cleanup(func() { maxEscrowedRoots = oldCap })
	coordSigner, pub := contenttest.NewSigner(t), contenttest.NewSigner(t)
	hs := mesh(t, coordSigner, pub)
	coord := startCoordinator(t, hs[0], nil)
	k, _ := content.NewKey()
	held := recordOf(t, manifestBy(t, pub.Priv, k, coord.id))
	coord.hold(t, held, k) // escrowed before the restart
	mine := recordOf(t, manifestBy(t, coordSigner.Priv, k, coord.id))
	coord.hold(t, mine, k) // the coordinator's own lineage
	k2, _ := content.NewKey()
	if err := depositor(t, hs[1], coord.id)(manifestBy(t, pub.Priv, k2, coord.id), k2); codeOf(err) != apierr.Conflict {
		t.Errorf("deposit of a second lineage with a cap of 1 = %v, want code %d", err, apierr.Conflict)
	}
	if n := coord.escrowedRoots(coordSigner.ID); n != 0 {
		t.Errorf("escrowedRoots(self) = %d, want 0: its own lineages are not counted", n)
	}
}

// TestProbe: the probe answers whether the coordinator holds a model's key.
func TestProbe(t *testing.T) {
	c := newFakeCoordinator(t)
	if res := c.c.Probe(t.Context(), "someone", &keyswire.Probe{Model: c.r.ID[:]}); res.Code != 0 {
		t.Errorf("Probe(held) = code %d %q, want success", res.Code, res.Message)
	}
	if res := c.c.Probe(t.Context(), "someone", &keyswire.Probe{Model: make([]byte, 32)}); res.Code != apierr.NotFound {
		t.Errorf("Probe(not held) = code %d, want %d", res.Code, apierr.NotFound)
	}
	if res := c.c.Probe(t.Context(), "someone", &keyswire.Probe{Model: []byte{1}}); res.Code != apierr.InvalidParams {
		t.Errorf("Probe(short id) = code %d, want %d", res.Code, apierr.InvalidParams)
	}
	if res := c.c.Unlock(t.Context(), "someone", &keyswire.Unlock{Model: []byte{1}}); res.Code != apierr.InvalidParams {
		t.Errorf("Unlock(short id) = code %d, want %d", res.Code, apierr.InvalidParams)
	}
	if res := c.c.Unlock(t.Context(), "someone", &keyswire.Unlock{Model: make([]byte, 32)}); res.Code != apierr.NotFound {
		t.Errorf("Unlock(unknown model) = code %d, want %d", res.Code, apierr.NotFound)
	}
}

// TestEntitled: a trainer is entitled to a lineage it has a grant for, or that it published;
// nobody else is.
func TestEntitled(t *testing.T) {
	c := newFakeCoordinator(t)
	alice, bob := newTrainer(t, "alice"), newTrainer(t, "bob")
	if !c.c.Entitled(c.r, c.publisher) {
		t.Errorf("Entitled(publisher) = false, want true")
	}
	if c.c.Entitled(c.r, alice.id) {
		t.Errorf("Entitled(alice, before paying) = true, want false")
	}
	if err := c.st.Put(store.GrantKey(c.r.Lineage(), alice.id.String()), &store.Grant{Ledger: "l", Block: 1, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if !c.c.Entitled(c.r, alice.id) || c.c.Entitled(c.r, bob.id) {
		t.Errorf("Entitled(alice, bob) after alice's grant = %v, %v; want true, false", c.c.Entitled(c.r, alice.id), c.c.Entitled(c.r, bob.id))
	}
}

// TestCoordinatorLifecycle: Start serves the keys purposes, Close removes them and is idempotent.
func TestCoordinatorLifecycle(t *testing.T) {
	coordSigner, trainer := contenttest.NewSigner(t), contenttest.NewSigner(t)
	hs := mesh(t, coordSigner, trainer)
	coord := startCoordinator(t, hs[0], nil)
	probe := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := keyswire.Request(ctx, hs[1], coord.id, keyswire.PurposeProbe, &keyswire.Probe{Model: make([]byte, 32)})
		return err
	}
	if err := probe(); codeOf(err) != apierr.NotFound {
		t.Fatalf("probe of a started coordinator = %v, want code %d", err, apierr.NotFound)
	}
	if err := coord.Close(); err != nil {
		t.Fatal(err)
	}
	if err := coord.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := probe(); err == nil || codeOf(err) != 0 {
		t.Errorf("probe after Close = %v, want the purpose unserved", err)
	}
}
