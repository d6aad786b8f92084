package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/ledger/ledgertest"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/kex"
	keyswire "github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fakeRounds is a hand-written Rounds: the (version, coordinator) pairs that run a round.
type fakeRounds struct {
	mu   sync.Mutex
	runs map[content.ModelID]map[peer.ID]bool
}

func (f *fakeRounds) Runs(model content.ModelID, coordinator peer.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[model][coordinator]
}

func (f *fakeRounds) set(model content.ModelID, coordinator peer.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.runs == nil {
		f.runs = map[content.ModelID]map[peer.ID]bool{}
	}
	if f.runs[model] == nil {
		f.runs[model] = map[peer.ID]bool{}
	}
	f.runs[model][coordinator] = true
}

// thresholdNet is a publisher, three coordinators and three trainers on one fake ledger, and a
// lineage root r of the publisher escrowed 2-of-3 across the coordinators (price 1, payee
// aaaaa-aa); every coordinator asks rounds whether a fellow runs a round.
type thresholdNet struct {
	pub     contenttest.Signer
	signers []contenttest.Signer // coordinators 0..2, trainers 3..5, extras after
	hosts   []host.Host          // publisher first, then signers in order (coordinator i is hosts[1+i])
	coords  []*testCoordinator
	rounds  *fakeRounds
	l       *ledgertest.Fake
	r       *catalog.Record
	key     content.Key
	pubKeys *Keyring
	pubCl   *Client
}

func newThresholdNet(t *testing.T, extras int) *thresholdNet {
	t.Helper()
	n := &thresholdNet{pub: contenttest.NewSigner(t), rounds: &fakeRounds{}, l: ledgertest.NewFake(10_000)}
	for range 6 + extras {
		n.signers = append(n.signers, contenttest.NewSigner(t))
	}
	n.hosts = mesh(t, append([]contenttest.Signer{n.pub}, n.signers...)...)
	var ids []peer.ID
	for i := range 3 {
		c := startCoordinator(t, n.hosts[1+i], n.l)
		c.deps.Rounds = n.rounds
		n.coords = append(n.coords, c)
		ids = append(ids, c.id)
	}
	n.key, _ = content.NewKey()
	signed := n.pub.Signed(t, contenttest.Version{Coords: ids, Key: n.key, Threshold: 2, Price: "1"})
	n.r = recordOf(t, signed)
	n.pubCl, n.pubKeys = n.client(t, 0)
	rep := n.pubCl.EscrowKey(t.Context(), n.r, n.key)
	if rep.Deposited != 3 || rep.Needed != 2 || rep.Err(n.r.ID) != nil {
		t.Fatalf("EscrowKey = %+v, want 3 deposited of 2 needed", rep)
	}
	return n
}

// client is a keys client on host i with a fresh store paying from the fake ledger.
func (n *thresholdNet) client(t *testing.T, i int) (*Client, *Keyring) {
	t.Helper()
	st := newStore(t)
	kr := newKeyringOn(t, st)
	h := n.hosts[i]
	return NewClient(Config{Self: h.ID()}, Deps{Store: st, Keys: kr, Host: h, Ledger: newFakeLedgerSvc(n.l, 10), Anchoring: newFakeAnchoring(false), Directory: fakeDirectory(nil)}), kr
}

// noWholeKey fails t if coordinator c stores a whole key equal to k, or any key of a model in
// its catalog of a threshold lineage.
func noWholeKey(t *testing.T, c *testCoordinator, k content.Key) {
	t.Helper()
	err := c.keys.StoredKeys(func(id content.ModelID, got content.Key) error {
		if got == k {
			return errors.New("it stores the whole key")
		}
		if r, err := c.catalog.Get(id); err == nil && r.ThresholdLineage() {
			return errors.New("it stores a whole key of a threshold lineage")
		}
		return nil
	})
	if err != nil {
		t.Errorf("coordinator %s: %v", c.id, err)
	}
}

// TestThresholdEscrowAndUnlock: each coordinator keeps its own share only; a trainer pays once,
// presents the one block to every coordinator (each records it for the trainer), rebuilds the
// key from the shares and keeps it; another trainer cannot reuse the block anywhere.
func TestThresholdEscrowAndUnlock(t *testing.T) {
	n := newThresholdNet(t, 0)
	for i, c := range n.coords {
		idx, y, err := c.keys.GetShare(n.r.ID)
		if err != nil || idx != uint(i) || content.CheckShare(n.r.Manifest, idx, y) != nil {
			t.Errorf("coordinator %d: share %d, %v; want its own checked share", i, idx, err)
		}
		if c.keys.Has(n.r.ID) {
			t.Errorf("coordinator %d holds the whole key", i)
		}
		noWholeKey(t, c, n.key)
		if res := c.Probe(t.Context(), n.hosts[4].ID(), &keyswire.Probe{Model: n.r.ID[:]}); res.Code != 0 || res.Holds != keyswire.HoldsShare {
			t.Errorf("coordinator %d probe = %+v, want it holds a share", i, res)
		}
	}
	alice, aliceKeys := n.client(t, 4)
	if err := alice.Unlock(t.Context(), n.r, nil, ""); err != nil {
		t.Fatalf("Unlock = %v", err)
	}
	if k, err := aliceKeys.Get(n.r.ID); err != nil || k != n.key {
		t.Fatalf("key after Unlock: %v; want the published key", err)
	}
	if calls := n.l.Calls(); len(calls) != 1 {
		t.Fatalf("%d transfers, want one payment", len(calls))
	}
	paidBlock := uint64(n.l.BlockCount() - 1)
	for i, c := range n.coords {
		if !c.Entitled(n.r, alice.cfg.Self) {
			t.Errorf("coordinator %d recorded no grant for the one block", i)
		}
		var pr store.PaymentRecord
		if err := c.st.Get(store.PaymentKey(n.l.Ledger().Encode(), paidBlock), &pr); err != nil || pr.Trainer != alice.cfg.Self.String() {
			t.Errorf("coordinator %d payment record %+v, %v; want the block consumed by alice", i, pr, err)
		}
	}
	// A second presentation of the same block to a coordinator by the same trainer is fine.
	u := &keyswire.Unlock{Model: n.r.ID[:], Ledger: n.l.Ledger().Encode(), Block: paidBlock, Payer: n.l.Principal().Encode()}
	if res := n.coords[1].Unlock(t.Context(), alice.cfg.Self, u); res.Code != 0 || len(res.Share) == 0 || res.Key != nil {
		t.Errorf("same block, same trainer again = %+v, want the share only", res)
	}
	// Another trainer's reuse of the block is refused at every coordinator.
	bob := n.hosts[5].ID()
	for i, c := range n.coords {
		if res := c.Unlock(t.Context(), bob, u); res.Code != apierr.PaymentUsed {
			t.Errorf("coordinator %d: bob with alice's block = code %d %q, want %d", i, res.Code, res.Message, apierr.PaymentUsed)
		}
	}
	// Alice again on a fresh store: entitled, no new payment.
	again, kr := n.client(t, 4)
	if err := again.Unlock(t.Context(), n.r, nil, ""); err != nil || len(n.l.Calls()) != 1 || !kr.Has(n.r.ID) {
		t.Errorf("entitled re-unlock = %v after %d transfers", err, len(n.l.Calls()))
	}
	// The publisher claims its own model's key from the shares.
	pubAgain, pk := n.client(t, 0)
	if err := pubAgain.Claim(t.Context(), n.r, nil); err != nil || !pk.Has(n.r.ID) {
		t.Errorf("publisher Claim = %v", err)
	}
}

// TestThresholdUnlockCoordinatorsDown: with one of three coordinators gone a trainer still
// unlocks; with two gone the unlock fails with one clear error and nothing is paid.
func TestThresholdUnlockCoordinatorsDown(t *testing.T) {
	n := newThresholdNet(t, 1)
	n.coords[0].Close() // down: it serves no keys purpose
	bob, bk := n.client(t, 5)
	if err := bob.Unlock(t.Context(), n.r, nil, ""); err != nil || !bk.Has(n.r.ID) {
		t.Fatalf("Unlock with 2 of 3 coordinators = %v", err)
	}
	paid := len(n.l.Calls())
	n.coords[1].Close()
	carol, ck := n.client(t, 6)
	err := carol.Unlock(t.Context(), n.r, nil, "")
	if apierr.CodeOf(err) != apierr.Unavailable || !strings.Contains(err.Error(), "only 1 of the 3 coordinators holding shares") || !strings.Contains(err.Error(), "2 are needed") || !strings.Contains(err.Error(), "nothing was paid") {
		t.Errorf("Unlock with 1 of 3 = %v, want unavailable: 1 of 3 answered, 2 needed, nothing paid", err)
	}
	if len(n.l.Calls()) != paid || ck.Has(n.r.ID) {
		t.Errorf("%d transfers after a failed unlock, want %d", len(n.l.Calls()), paid)
	}
	// Paid, then short: the error says the block is kept; a retry never pays again.
	dave, _ := n.client(t, 7)
	block := n.l.Add(icp.Account{Owner: n.l.Principal()}, icp.Account{Owner: mustPrincipal(t, "aaaaa-aa")}, 1, keyswire.Memo(n.r.Lineage(), dave.cfg.Self), 0)
	err = dave.Unlock(t.Context(), n.r, &block, "")
	if err == nil || !strings.Contains(err.Error(), "only 1 of the 2 key shares needed") || !strings.Contains(err.Error(), "never paid again") {
		t.Errorf("Unlock with a block and 1 share = %v (%v), want the shortfall", err, err.(*apierr.Error).Data)
	}
}

// TestThresholdDepositRefusals: a share is kept only from the manifest's signer, at this
// coordinator's index, matching its commitment; a whole key of a threshold lineage never.
func TestThresholdDepositRefusals(t *testing.T) {
	n := newThresholdNet(t, 1)
	stranger := n.hosts[7]
	k, _ := content.NewKey()
	ids := []peer.ID{n.coords[0].id, n.coords[1].id, n.coords[2].id}
	signed := n.pub.Signed(t, contenttest.Version{Coords: ids, Key: k, Threshold: 2})
	man, _, _ := content.Open(signed)
	shares, _, _ := content.SplitKey(k, man.Salt, 3, 2)
	c1 := n.coords[1].id
	dep := func(h host.Host, d *keyswire.Deposit) error {
		_, err := keyswire.Request(t.Context(), h, c1, keyswire.PurposeEscrow, d)
		return err
	}
	for _, tt := range []struct {
		name string
		from host.Host
		d    *keyswire.Deposit
		code int
		msg  string
	}{
		{"wrong signer", stranger, &keyswire.Deposit{Manifest: signed, Share: shares[1].Y, Index: 1}, apierr.Integrity, "only the model's publisher"},
		{"wrong index", n.hosts[0], &keyswire.Deposit{Manifest: signed, Share: shares[0].Y, Index: 0}, apierr.Integrity, "share 0 is not this coordinator's: it holds share 1"},
		{"share not matching its commitment", n.hosts[0], &keyswire.Deposit{Manifest: signed, Share: shares[0].Y, Index: 1}, apierr.Integrity, "does not match the manifest's share commitment 1"},
		{"whole key of a threshold version", n.hosts[0], &keyswire.Deposit{Manifest: signed, Key: k[:]}, apierr.Integrity, "never the whole key"},
		{"share and key", n.hosts[0], &keyswire.Deposit{Manifest: signed, Key: k[:], Share: shares[1].Y, Index: 1}, apierr.Integrity, "never the whole key"},
	} {
		err := dep(tt.from, tt.d)
		if codeOf(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: deposit = %v, want code %d saying %q", tt.name, err, tt.code, tt.msg)
		}
	}
	if n.coords[1].keys.HasShare(content.ModelID(sha256.Sum256(signed))) {
		t.Errorf("a refused share was kept")
	}
	// A whole-key child of the threshold lineage is refused: its coordinators keep shares only.
	kc, _ := content.NewKey()
	child := n.pub.Signed(t, contenttest.Version{Parent: &n.r.ID, Lineage: &n.r.ID, Key: kc})
	if err := dep(n.hosts[0], &keyswire.Deposit{Manifest: child, Key: kc[:]}); codeOf(err) != apierr.Role || !strings.Contains(err.Error(), "keeps only its share") {
		t.Errorf("whole key of a threshold lineage's child = %v, want a role refusal", err)
	}
	// An aggregating coordinator deposits the shares of a fresh version it signed.
	agg := n.signers[0]
	kv, _ := content.NewKey()
	vsigned, vid := agg.Sign(t, contenttest.Version{Parent: &n.r.ID, Lineage: &n.r.ID, Key: kv, Threshold: 2, Holders: ids})
	vman, _, _ := content.Open(vsigned)
	vshares, _, _ := content.SplitKey(kv, vman.Salt, 3, 2)
	if err := dep(n.hosts[1], &keyswire.Deposit{Manifest: vsigned, Share: vshares[1].Y, Index: 1}); err != nil {
		t.Errorf("aggregating coordinator's share deposit = %v, want accepted", err)
	}
	if _, y, err := n.coords[1].keys.GetShare(vid); err != nil || string(y) != string(vshares[1].Y) {
		t.Errorf("the coordinator did not keep the aggregate's share: %v", err)
	}
	for _, c := range n.coords {
		noWholeKey(t, c, kv)
		noWholeKey(t, c, n.key)
	}
}

// TestThresholdHostileShares: a share from the wrong coordinator or of another version is
// skipped; left with fewer than t, the unlock is one clear error and nothing is kept.
func TestThresholdHostileShares(t *testing.T) {
	n := newThresholdNet(t, 2)
	honest := n.coords[0]
	liarA, liarB := n.signers[6], n.signers[7]
	ids := []peer.ID{honest.id, liarA.ID, liarB.ID}
	k, _ := content.NewKey()
	signed := n.pub.Signed(t, contenttest.Version{Coords: ids, Key: k, Threshold: 2})
	r := recordOf(t, signed)
	shares, _, _ := content.SplitKey(k, r.Manifest.Salt, 3, 2)
	other, _ := content.NewKey()
	otherShares, _, _ := content.SplitKey(other, r.Manifest.Salt, 3, 2)
	serve := func(h host.Host, res *keyswire.Result) {
		srv := kex.NewServer(t.Context(), h, slog.New(slog.DiscardHandler))
		t.Cleanup(func() { srv.Close() })
		keyswire.NewServer(srv, keyswire.Handlers{
			Unlock: func(context.Context, peer.ID, *keyswire.Unlock) *keyswire.Result { return res },
			Probe: func(context.Context, peer.ID, *keyswire.Probe) *keyswire.Result {
				return &keyswire.Result{Holds: keyswire.HoldsShare}
			},
		})
	}
	serve(n.hosts[7], &keyswire.Result{Share: shares[0].Y, Index: 0})      // the honest coordinator's share
	serve(n.hosts[8], &keyswire.Result{Share: otherShares[2].Y, Index: 2}) // another key's share
	pub, _ := n.client(t, 0)
	if rep := pub.EscrowKey(t.Context(), r, k); rep.Deposited != 1 || rep.Err(r.ID) == nil || !strings.Contains(rep.Err(r.ID).Error(), "only 1 of its 3 coordinators hold their shares") {
		t.Errorf("escrow with two coordinators that take nothing = %+v, want 1 deposited and the shortfall", rep)
	}
	claimer, kr := n.client(t, 0)
	err := claimer.Claim(t.Context(), r, nil)
	if apierr.CodeOf(err) != apierr.Integrity || !strings.Contains(err.Error(), "only 1 of the 2 key shares needed") {
		t.Errorf("Claim with two bad shares = %v, want integrity: 1 of 2", err)
	}
	if ae, ok := err.(*apierr.Error); !ok || !strings.Contains(ae.Data.(string), "sent share 0, but it holds share 1") || !strings.Contains(ae.Data.(string), "does not match share commitment 2") {
		t.Errorf("Claim's reasons = %v, want both bad shares named", err)
	}
	if kr.Has(r.ID) {
		t.Errorf("a key was kept from bad shares")
	}
}

// TestThresholdReconstructedKeyMismatch: shares that match their commitments but rebuild a key
// other than the committed one are an integrity error and nothing is kept.
func TestThresholdReconstructedKeyMismatch(t *testing.T) {
	n := newThresholdNet(t, 0)
	ids := []peer.ID{n.coords[0].id, n.coords[1].id, n.coords[2].id}
	k, _ := content.NewKey()
	wrong, _ := content.NewKey()
	m := contenttest.Manifest(contenttest.Version{Coords: ids, Key: k, Threshold: 2})
	_, commits, _ := content.SplitKey(wrong, m.Salt, 3, 2)
	m.ShareCommitments = commits
	signed, _, err := content.Sign(m, n.pub.Priv)
	if err != nil {
		t.Fatal(err)
	}
	r := recordOf(t, signed)
	if rep := n.pubCl.EscrowKey(t.Context(), r, wrong); rep.Deposited != 3 {
		t.Fatalf("escrow of the committed shares = %+v", rep)
	}
	claimer, kr := n.client(t, 0)
	err = claimer.Claim(t.Context(), r, nil)
	if apierr.CodeOf(err) != apierr.Integrity || !strings.Contains(err.Error(), "the reconstructed key does not match") {
		t.Errorf("Claim = %v, want integrity: the reconstructed key does not match", err)
	}
	if kr.Has(r.ID) {
		t.Errorf("a key that fails its commitment was kept")
	}
}

// TestRoundShares: a coordinator releases its share to a fellow coordinator only while that one
// runs a round on the version; HoldForRound then holds the key in memory, never in the store.
func TestRoundShares(t *testing.T) {
	n := newThresholdNet(t, 0)
	a := n.coords[0]
	ask := func(from host.Host, to peer.ID) (*keyswire.Result, error) {
		return keyswire.Request(t.Context(), from, to, keyswire.PurposeRoundShare, &keyswire.RoundShare{Model: n.r.ID[:]})
	}
	if _, err := ask(n.hosts[1], n.coords[1].id); codeOf(err) != apierr.Role || !strings.Contains(err.Error(), "runs no round on model") {
		t.Errorf("share request without a round = %v, want a role refusal", err)
	}
	trainer := n.hosts[4]
	n.rounds.set(n.r.ID, trainer.ID())
	if _, err := ask(trainer, n.coords[1].id); codeOf(err) != apierr.Role || !strings.Contains(err.Error(), "only a coordinator of the model's lineage") {
		t.Errorf("share request from a non-coordinator = %v, want a role refusal", err)
	}
	ac := NewClient(Config{Self: a.id}, Deps{Store: a.st, Keys: a.keys, Host: n.hosts[1], Ledger: a.ledger, Anchoring: newFakeAnchoring(false), Directory: fakeDirectory(nil)})
	if err := ac.HoldForRound(t.Context(), n.r, nil); apierr.CodeOf(err) != apierr.Role || !strings.Contains(err.Error(), "only 1 of the 2 key shares") {
		t.Errorf("HoldForRound without a round = %v, want the refusals", err)
	}
	n.rounds.set(n.r.ID, a.id)
	res, err := ask(n.hosts[1], n.coords[2].id)
	if err != nil || res.Index != 2 || content.CheckShare(n.r.Manifest, res.Index, res.Share) != nil {
		t.Fatalf("share request while running a round = %+v, %v; want coordinator 2's share", res, err)
	}
	if err := ac.HoldForRound(t.Context(), n.r, nil); err != nil {
		t.Fatalf("HoldForRound = %v", err)
	}
	if k, err := a.keys.Get(n.r.ID); err != nil || k != n.key || !a.keys.Holds(n.r.ID) {
		t.Errorf("held key = %v, want the version's key held in memory", err)
	}
	noWholeKey(t, a, n.key)
	a.keys.Release(n.r.ID)
	if a.keys.Has(n.r.ID) {
		t.Errorf("Release left the key")
	}
}

// TestHeldKeysAreNeverPersisted: a held key is gone once the store is reopened.
func TestHeldKeysAreNeverPersisted(t *testing.T) {
	dir := t.TempDir()
	master := make([]byte, 32)
	rand.Read(master)
	open := func() (*store.Store, *Keyring) {
		st, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		kr, err := NewKeyring(master, st)
		if err != nil {
			t.Fatal(err)
		}
		return st, kr
	}
	st, kr := open()
	k, _ := content.NewKey()
	id := content.ModelID{7}
	kr.Hold(id, k)
	if got, err := kr.Get(id); err != nil || got != k || kr.Stored(id) {
		t.Fatalf("held key: Get = %v, stored %v; want it in memory only", err, kr.Stored(id))
	}
	kr.Close()
	if kr.Has(id) {
		t.Errorf("Close left a held key")
	}
	kr.Hold(id, k)
	st.Close()
	st2, kr2 := open()
	defer st2.Close()
	if _, err := kr2.Get(id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("held key after reopening the store: %v, want not found", err)
	}
	if err := kr2.StoredKeys(func(content.ModelID, content.Key) error { return errors.New("a stored key") }); err != nil {
		t.Errorf("StoredKeys after reopening: %v, want none", err)
	}
}
