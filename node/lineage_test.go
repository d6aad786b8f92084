package node

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// signer is a peer identity that signs manifests in tests.
type signer struct {
	priv crypto.PrivKey
	id   peer.ID
}

func newSigner(t *testing.T) signer {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(priv)
	return signer{priv, id}
}

// version describes a test manifest: a root naming coords, or a child of parent claiming lineage.
type version struct {
	price, payee    string
	parent, lineage *content.ModelID
	coords          []peer.ID
	key             content.Key
}

// sign signs a one-chunk manifest for v with s's key.
func (s signer) sign(t *testing.T, v version) ([]byte, content.ModelID) {
	t.Helper()
	if v.price == "" {
		v.price = "1000"
	}
	if v.payee == "" {
		v.payee = "aaaaa-aa"
	}
	kc := v.key.Commitment()
	m := &content.Manifest{Name: "m", Size: 1, ChunkSize: content.MinChunkSize, Chunks: 1, Root: make([]byte, 32),
		KeyCommitment: kc[:], Salt: make([]byte, content.SaltSize), Price: v.price, Payee: content.Account{Owner: v.payee},
		CreatedAt: time.Now().UnixMilli()}
	rand.Read(m.Root) // distinct manifests
	if v.parent != nil {
		m.Parent, m.Lineage = v.parent[:], v.lineage[:]
	}
	for _, c := range v.coords {
		m.Coordinators = append(m.Coordinators, []byte(c))
	}
	signed, id, err := content.Sign(m, s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return signed, id
}

func TestLineageAdmission(t *testing.T) {
	n := startNode(t, config.RoleTrainer)
	pub, coord, stranger := newSigner(t), newSigner(t), newSigner(t)
	rootSigned, root := pub.sign(t, version{coords: []peer.ID{coord.id}, price: "1000", payee: "aaaaa-aa"})
	if _, added, err := n.models.add(rootSigned, "test"); err != nil || !added {
		t.Fatalf("add(root) = %v, %v; want added", added, err)
	}
	var nowhere content.ModelID
	rand.Read(nowhere[:])
	other := nowhere
	other[0] ^= 1

	childOf := func(s signer, parent, lineage content.ModelID, price, payee string) ([]byte, content.ModelID) {
		return s.sign(t, version{parent: &parent, lineage: &lineage, price: price, payee: payee})
	}
	refused := []struct {
		name   string
		signed []byte
		want   error
	}{
		{"unknown parent", first(childOf(pub, nowhere, nowhere, "", "")), errUnknownParent},
		{"signed by a stranger", first(childOf(stranger, root, root, "1", "2vxsx-fae")), errLineage},
		{"forged lineage field", first(childOf(pub, root, other, "", "")), errLineage},
		{"stranger claims the root as its own lineage", first(childOf(stranger, root, nowhere, "", "")), errLineage},
	}
	for _, tt := range refused {
		_, _, err := n.models.add(tt.signed, "test")
		if !errors.Is(err, tt.want) {
			t.Errorf("add(%s) = %v, want %v", tt.name, err, tt.want)
		}
		if _, err := n.models.get(content.ModelID(sha(tt.signed))); err == nil {
			t.Errorf("%s: the refused manifest is in the catalog", tt.name)
		}
	}

	// A child by the named coordinator, listing its own price and payee: accepted, and its
	// lineage, price and payee are the root's.
	childSigned, child := childOf(coord, root, root, "1", "2vxsx-fae")
	rec, added, err := n.models.add(childSigned, "test")
	if err != nil || !added {
		t.Fatalf("add(child by the named coordinator) = %v, %v; want added", added, err)
	}
	if rec.Lineage() != root || rec.Price().String() != "1000" || rec.Payee().Owner != "aaaaa-aa" {
		t.Errorf("child lineage %x price %s payee %s; want the root's %x, 1000, aaaaa-aa", rec.Lineage(), rec.Price(), rec.Payee().Owner, root)
	}
	// A grandchild by the root's publisher names the root as its lineage, not its parent.
	if _, _, err := n.models.add(first(childOf(pub, child, child, "", "")), "test"); !errors.Is(err, errLineage) {
		t.Errorf("add(grandchild claiming its parent as lineage) = %v, want errLineage", err)
	}
	gc, _, err := n.models.add(first(childOf(pub, child, root, "", "")), "test")
	if err != nil || gc.Lineage() != root {
		t.Errorf("add(grandchild by the publisher) = %v, %v; want lineage %x", gc, err, root)
	}
	// A fork is its own root, whatever it is priced at.
	forkSigned, fork := stranger.sign(t, version{price: "0"})
	if r, _, err := n.models.add(forkSigned, "test"); err != nil || r.Lineage() != fork {
		t.Errorf("add(fork) = %v, %v; want its own lineage", r, err)
	}
}

func first(b []byte, _ content.ModelID) []byte { return b }

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

// A datadir written before lineages were checked may hold a forged child: the node starts, does
// not list it and does not find it, and finds it once its lineage verifies.
func TestStoredForgedLineageIsUnknown(t *testing.T) {
	n := startNode(t, config.RoleTrainer)
	pub, stranger := newSigner(t), newSigner(t)
	rootSigned, root := pub.sign(t, version{})
	forged, forgedID := stranger.sign(t, version{parent: &root, lineage: &root, price: "1"})
	orphan, orphanID := pub.sign(t, version{parent: &root, lineage: &root})
	for _, b := range [][]byte{forged, orphan} {
		if err := n.store.Put(store.ModelKey(sha(b)), &store.ModelRecord{Manifest: b, Source: "gossip", Added: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []content.ModelID{forgedID, orphanID} {
		if _, err := n.models.get(id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get(%x) = %v, want not found", id[:4], err)
		}
	}
	if recs, err := n.models.all(); err != nil || len(recs) != 0 {
		t.Errorf("all() = %d records, %v; want none", len(recs), err)
	}
	if _, _, err := n.models.add(rootSigned, "test"); err != nil {
		t.Fatal(err)
	}
	if r, err := n.models.get(orphanID); err != nil || r.Lineage() != root {
		t.Errorf("get(orphan once its parent is known) = %v, %v; want lineage %x", r, err, root)
	}
	if _, err := n.models.get(forgedID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get(forged child) = %v, want not found", err)
	}
}

func TestCatalogQuotaPerPublisher(t *testing.T) {
	old := maxCatalogPerPublisher
	maxCatalogPerPublisher = 3
	t.Cleanup(func() { maxCatalogPerPublisher = old })
	n := startNode(t, config.RoleTrainer)
	spammer, honest := newSigner(t), newSigner(t)
	for i := range 5 {
		_, _, err := n.models.add(first(spammer.sign(t, version{})), "test")
		if want := i >= 3; want != errors.Is(err, errCatalogQuota) {
			t.Errorf("add(spam %d) = %v, want quota refusal %v", i, err, want)
		}
	}
	if recs, _ := n.models.all(); len(recs) != 3 {
		t.Errorf("catalog holds %d models, want 3", len(recs))
	}
	if _, _, err := n.models.add(first(honest.sign(t, version{})), "test"); err != nil {
		t.Errorf("add(another publisher's model) = %v", err)
	}
	// Adding a known manifest again costs no quota.
	b, _ := honest.sign(t, version{})
	for range 3 {
		if _, _, err := n.models.add(b, "test"); err != nil {
			t.Fatalf("add(same manifest again) = %v", err)
		}
	}
	if got := n.models.perPublisher[honest.id]; got != 2 {
		t.Errorf("honest publisher's count = %d, want 2", got)
	}
}

func TestPeerLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newPeerLimiter(3, time.Minute, 2)
	l.now = func() time.Time { return now }
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")
	for i := range 4 {
		if got := l.allow(a); got != (i < 3) {
			t.Errorf("allow(a) #%d = %v, want %v", i, got, i < 3)
		}
	}
	if !l.allow(b) {
		t.Errorf("allow(b) = false: one peer's burst limits another")
	}
	if l.allow(c) {
		t.Errorf("allow(c) with the table full of busy peers = true, want false")
	}
	now = now.Add(3 * time.Minute) // a and b refill: they are forgotten for a newcomer
	if !l.allow(c) {
		t.Errorf("allow(c) after the others went idle = false")
	}
	if !l.allow(a) {
		t.Errorf("allow(a) after a minute = false")
	}
}
