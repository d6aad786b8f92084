package catalog

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/califusion/califusion/node/anchoring"
	"github.com/califusion/califusion/node/anchoring/anchoringtest"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/store"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
)

// waitFor polls cond until it returns nil or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fakeProvider records the keys handed to the DHT provider, call by call.
type fakeProvider struct {
	mu    sync.Mutex
	calls [][]multihash.Multihash
}

func (f *fakeProvider) StartProviding(_ bool, keys ...multihash.Multihash) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, keys)
	return nil
}

func (f *fakeProvider) got() [][]multihash.Multihash {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]multihash.Multihash(nil), f.calls...)
}

// fakeRouting answers FindProvidersAsync with a fixed list, recording the CIDs asked for.
type fakeRouting struct {
	providers []peer.AddrInfo
	asked     []cid.Cid
}

func (f *fakeRouting) FindProvidersAsync(ctx context.Context, key cid.Cid, count int) <-chan peer.AddrInfo {
	f.asked = append(f.asked, key)
	ch := make(chan peer.AddrInfo, len(f.providers))
	for _, p := range f.providers {
		ch <- p
	}
	close(ch)
	return ch
}

// fakeHoldings holds every chunk of the models it lists, none of the others.
type fakeHoldings map[[32]byte]bool

func (f fakeHoldings) Held(id [32]byte, chunks uint64) uint64 {
	if f[id] {
		return chunks
	}
	return 0
}

// Anchored manifests fill the catalog, children before their parents included, and are
// remembered verified; a forged child is not admitted.
func TestFillFromAnchors(t *testing.T) {
	fake := anchoringtest.NewFake()
	an := anchoring.NewWith("prefer", fake, nil)
	n, _ := newCatalog(t, Deps{Anchors: an})
	pub, stranger := contenttest.NewSigner(t), contenttest.NewSigner(t)
	rootSigned, root := pub.Sign(t, contenttest.Version{})
	childSigned, child := pub.Sign(t, contenttest.Version{Parent: &root, Lineage: &root})
	grandSigned, grand := pub.Sign(t, contenttest.Version{Parent: &child, Lineage: &root})
	forgedSigned, forged := stranger.Sign(t, contenttest.Version{Parent: &root, Lineage: &root})
	for _, b := range [][]byte{grandSigned, childSigned, rootSigned, forgedSigned} {
		if _, err := fake.Put(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	fake.Overwrite([32]byte{7}, rootSigned) // under a key it does not hash to: skipped as invalid
	n.fillOnce(t.Context())
	for _, id := range []content.ModelID{root, child, grand} {
		r, err := n.Get(id)
		if err != nil || r.Source != "anchor" || r.Lineage() != root {
			t.Errorf("Get(%x) after filling = %v, %v; want from anchor, lineage %x", id[:4], r, err, root[:4])
		}
		if got := an.Known(id); got != calimero.StateVerified {
			t.Errorf("anchoring.Known(%x) = %q, want %q", id[:4], got, calimero.StateVerified)
		}
	}
	if n.Known(forged) {
		t.Errorf("the forged child is in the catalog")
	}
	if recs, _ := n.All(); len(recs) != 3 {
		t.Errorf("catalog holds %d models, want 3", len(recs))
	}
}

// Providers lists announcers, then the DHT's providers, never this node, at most MaxProviders.
func TestProviders(t *testing.T) {
	a, b, c := contenttest.NewSigner(t), contenttest.NewSigner(t), contenttest.NewSigner(t)
	routing := &fakeRouting{}
	n, _ := newCatalog(t, Deps{Routing: routing})
	routing.providers = []peer.AddrInfo{{ID: n.cfg.Self}, {ID: a.ID}, {ID: c.ID}}
	signed, id := a.Sign(t, contenttest.Version{})
	opened, _, err := n.Add(signed, "test")
	if err != nil {
		t.Fatal(err)
	}
	n.heard(opened, b.ID)
	n.heard(opened, n.cfg.Self) // its own announcement makes this node no provider
	got := n.Providers(t.Context(), id)
	if len(got) != 3 || got[0] != b.ID || got[1] != a.ID || got[2] != c.ID {
		t.Errorf("Providers = %v, want the announcer %s then the DHT's %s, %s", got, b.ID, a.ID, c.ID)
	}
	if len(routing.asked) != 1 || !routing.asked[0].Equals(ModelCID(id)) {
		t.Errorf("the DHT was asked for %v, want %v", routing.asked, ModelCID(id))
	}
	n.cfg.MaxProviders = 1
	if got := n.Providers(t.Context(), id); len(got) != 1 {
		t.Errorf("Providers with MaxProviders 1 = %v, want one", got)
	}
}

// A model this node publishes is stored in the publisher's transaction, then entered with
// Published: it is found, listed by the index, and counts for this node without a quota.
func TestPublished(t *testing.T) {
	old := MaxCatalogPerPublisher
	MaxCatalogPerPublisher = 1
	t.Cleanup(func() { MaxCatalogPerPublisher = old })
	n, st := newCatalog(t, Deps{})
	me := contenttest.NewSigner(t)
	n.cfg.Self = me.ID
	for range 2 {
		signed, id := me.Sign(t, contenttest.Version{})
		man, _, _ := content.Open(signed)
		r := &Record{ID: id, Manifest: man, Signed: signed, Source: "published"}
		r.Root = r
		added := time.Now().UTC()
		if err := st.Update(func(tx *store.Tx) error { return n.StorePublished(tx, r, added) }); err != nil {
			t.Fatal(err)
		}
		n.Published(r, added)
		if got, err := n.Get(id); err != nil || got != r {
			t.Errorf("Get(published) = %v, %v; want the record", got, err)
		}
		if _, ok := n.Index().Manifest(id); !ok {
			t.Errorf("the index does not serve the published model")
		}
	}
	if _, _, err := n.Add(me.Signed(t, contenttest.Version{}), "catalog"); err != nil {
		t.Errorf("Add(this node's model past the cap) = %v, want no quota", err)
	}
	if n.perPublisher[me.ID] != 3 {
		t.Errorf("this node's count = %d, want 3", n.perPublisher[me.ID])
	}
}

// Start without a host or pubsub runs what needs neither: complete models are provided at
// start in one batch, and later ones as they come. Close is idempotent.
func TestStartProvides(t *testing.T) {
	prov := &fakeProvider{}
	holds := fakeHoldings{}
	n, _ := newCatalog(t, Deps{Provider: prov, Holdings: holds})
	pub := contenttest.NewSigner(t)
	for i := range 3 {
		r, _, err := n.Add(pub.Signed(t, contenttest.Version{}), "test")
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			holds[r.ID] = true
		}
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if calls := prov.got(); len(calls) != 1 || len(calls[0]) != 2 {
			return errors.New("the complete models were not provided in one batch at start")
		}
		return nil
	})
	n.Provide(content.ModelID{1})
	waitFor(t, 5*time.Second, func() error {
		if calls := prov.got(); len(calls) != 2 || string(calls[1][0]) != string(ModelCID(content.ModelID{1}).Hash()) {
			return errors.New("Provide did not reach the provider")
		}
		return nil
	})
	n.Announce(t.Context(), &Record{}) // no topic: nothing happens
	if err := n.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}
