package catalog

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestLineageAdmission(t *testing.T) {
	n, _ := newCatalog(t, Deps{})
	pub, coord, stranger := contenttest.NewSigner(t), contenttest.NewSigner(t), contenttest.NewSigner(t)
	rootSigned, root := pub.Sign(t, contenttest.Version{Coords: []peer.ID{coord.ID}, Price: "1000", Payee: "aaaaa-aa"})
	if _, added, err := n.Add(rootSigned, "test"); err != nil || !added {
		t.Fatalf("Add(root) = %v, %v; want added", added, err)
	}
	var nowhere content.ModelID
	rand.Read(nowhere[:])
	other := nowhere
	other[0] ^= 1

	childOf := func(s contenttest.Signer, parent, lineage content.ModelID, price, payee string) ([]byte, content.ModelID) {
		return s.Sign(t, contenttest.Version{Parent: &parent, Lineage: &lineage, Price: price, Payee: payee})
	}
	refused := []struct {
		name   string
		signed []byte
		want   error
	}{
		{"unknown parent", first(childOf(pub, nowhere, nowhere, "", "")), ErrUnknownParent},
		{"signed by a stranger", first(childOf(stranger, root, root, "1", "2vxsx-fae")), ErrLineage},
		{"forged lineage field", first(childOf(pub, root, other, "", "")), ErrLineage},
		{"stranger claims the root as its own lineage", first(childOf(stranger, root, nowhere, "", "")), ErrLineage},
	}
	for _, tt := range refused {
		_, _, err := n.Add(tt.signed, "test")
		if !errors.Is(err, tt.want) {
			t.Errorf("Add(%s) = %v, want %v", tt.name, err, tt.want)
		}
		if _, err := n.Get(content.ModelID(sha(tt.signed))); err == nil {
			t.Errorf("%s: the refused manifest is in the catalog", tt.name)
		}
	}

	// A child by the named coordinator, listing its own price and payee: accepted, and its
	// lineage, price and payee are the root's.
	childSigned, child := childOf(coord, root, root, "1", "2vxsx-fae")
	rec, added, err := n.Add(childSigned, "test")
	if err != nil || !added {
		t.Fatalf("Add(child by the named coordinator) = %v, %v; want added", added, err)
	}
	if rec.Lineage() != root || rec.Price().String() != "1000" || rec.Payee().Owner != "aaaaa-aa" {
		t.Errorf("child lineage %x price %s payee %s; want the root's %x, 1000, aaaaa-aa", rec.Lineage(), rec.Price(), rec.Payee().Owner, root)
	}
	// A grandchild by the root's publisher names the root as its lineage, not its parent.
	if _, _, err := n.Add(first(childOf(pub, child, child, "", "")), "test"); !errors.Is(err, ErrLineage) {
		t.Errorf("Add(grandchild claiming its parent as lineage) = %v, want ErrLineage", err)
	}
	gc, _, err := n.Add(first(childOf(pub, child, root, "", "")), "test")
	if err != nil || gc.Lineage() != root {
		t.Errorf("Add(grandchild by the publisher) = %v, %v; want lineage %x", gc, err, root)
	}
	// A fork is its own root, whatever it is priced at.
	forkSigned, fork := stranger.Sign(t, contenttest.Version{Price: "0"})
	if r, _, err := n.Add(forkSigned, "test"); err != nil || r.Lineage() != fork {
		t.Errorf("Add(fork) = %v, %v; want its own lineage", r, err)
	}
}

// A datadir written before lineages were checked may hold a forged child: the node starts, does
// not list it and does not find it, and finds it once its lineage verifies.
func TestStoredForgedLineageIsUnknown(t *testing.T) {
	n, st := newCatalog(t, Deps{})
	pub, stranger := contenttest.NewSigner(t), contenttest.NewSigner(t)
	rootSigned, root := pub.Sign(t, contenttest.Version{})
	forged, forgedID := stranger.Sign(t, contenttest.Version{Parent: &root, Lineage: &root, Price: "1"})
	orphan, orphanID := pub.Sign(t, contenttest.Version{Parent: &root, Lineage: &root})
	for _, b := range [][]byte{forged, orphan} {
		if err := st.Put(store.ModelKey(sha(b)), &store.ModelRecord{Manifest: b, Source: "gossip", Added: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []content.ModelID{forgedID, orphanID} {
		if _, err := n.Get(id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%x) = %v, want not found", id[:4], err)
		}
	}
	if recs, err := n.All(); err != nil || len(recs) != 0 {
		t.Errorf("All() = %d records, %v; want none", len(recs), err)
	}
	if again, err := New(Config{}, Deps{Store: st}); err != nil {
		t.Errorf("New over the stored forgeries = %v", err)
	} else if recs, err := again.All(); err != nil || len(recs) != 0 {
		t.Errorf("All() after New = %d records, %v; want none", len(recs), err)
	}
	if _, _, err := n.Add(rootSigned, "test"); err != nil {
		t.Fatal(err)
	}
	if r, err := n.Get(orphanID); err != nil || r.Lineage() != root {
		t.Errorf("Get(orphan once its parent is known) = %v, %v; want lineage %x", r, err, root)
	}
	if _, err := n.Get(forgedID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(forged child) = %v, want not found", err)
	}
}

func TestCatalogQuotaPerPublisher(t *testing.T) {
	old := MaxCatalogPerPublisher
	MaxCatalogPerPublisher = 3
	t.Cleanup(func() { MaxCatalogPerPublisher = old })
	n, st := newCatalog(t, Deps{})
	spammer, honest := contenttest.NewSigner(t), contenttest.NewSigner(t)
	for i := range 5 {
		_, _, err := n.Add(spammer.Signed(t, contenttest.Version{}), "test")
		if want := i >= 3; want != errors.Is(err, ErrQuota) {
			t.Errorf("Add(spam %d) = %v, want quota refusal %v", i, err, want)
		}
	}
	if recs, _ := n.All(); len(recs) != 3 {
		t.Errorf("catalog holds %d models, want 3", len(recs))
	}
	if _, _, err := n.Add(honest.Signed(t, contenttest.Version{}), "test"); err != nil {
		t.Errorf("Add(another publisher's model) = %v", err)
	}
	// Adding a known manifest again costs no quota.
	b, _ := honest.Sign(t, contenttest.Version{})
	for range 3 {
		if _, _, err := n.Add(b, "test"); err != nil {
			t.Fatalf("Add(same manifest again) = %v", err)
		}
	}
	if got := n.perPublisher[honest.ID]; got != 2 {
		t.Errorf("honest publisher's count = %d, want 2", got)
	}
	// The counts survive a restart: New counts the stored records per publisher.
	again, err := New(Config{Self: n.cfg.Self}, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if again.perPublisher[spammer.ID] != 3 || again.perPublisher[honest.ID] != 2 {
		t.Errorf("counts after New = %d, %d; want 3, 2", again.perPublisher[spammer.ID], again.perPublisher[honest.ID])
	}
	if _, _, err := again.Add(spammer.Signed(t, contenttest.Version{}), "test"); !errors.Is(err, ErrQuota) {
		t.Errorf("Add(spam after a restart) = %v, want a quota refusal", err)
	}
}
