package custody

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fetcher records the fetches it is asked for; models in have are complete already.
type fetcher struct {
	mu      sync.Mutex
	have    map[content.ModelID]bool
	fetched chan content.ModelID
}

func (f *fetcher) Complete(r *catalog.Record) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.have[r.ID]
}

func (f *fetcher) Fetch(_ context.Context, id content.ModelID) (string, error) {
	f.fetched <- id
	return "job", nil
}

func newCatalog(t *testing.T, self peer.ID) *catalog.Service {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := catalog.New(catalog.Config{Self: self, MaxProviders: 8}, catalog.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A coordinator fetches every new version of a lineage that names it, the ones in its catalog
// before it started and the ones added after, and nothing else: not a lineage that names another
// coordinator, not a version it signed itself, not one it holds already.
func TestCustodianFetchesItsLineages(t *testing.T) {
	pub, self, other := contenttest.NewSigner(t), contenttest.NewSigner(t), contenttest.NewSigner(t)
	cat := newCatalog(t, self.ID)
	add := func(signed []byte) *catalog.Record {
		t.Helper()
		r, added, err := cat.Add(signed, "test")
		if err != nil || !added {
			t.Fatalf("Add = %v, %v", added, err)
		}
		return r
	}
	mine := add(pub.Signed(t, contenttest.Version{Coords: []peer.ID{self.ID, other.ID}}))
	notMine := add(pub.Signed(t, contenttest.Version{Coords: []peer.ID{other.ID}}))
	held := add(pub.Signed(t, contenttest.Version{Coords: []peer.ID{self.ID}}))

	f := &fetcher{have: map[content.ModelID]bool{held.ID: true}, fetched: make(chan content.ModelID, 16)}
	c := New(self.ID, cat, f, nil)
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cat.OnAdded(c.Added)

	want := func(id content.ModelID, what string) {
		t.Helper()
		select {
		case got := <-f.fetched:
			if got != id {
				t.Fatalf("fetched %x, want %s %x", got[:4], what, id[:4])
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was never fetched", what)
		}
	}
	want(mine.ID, "the root already in the catalog")

	lineage := mine.ID
	byOther := add(other.Signed(t, contenttest.Version{Parent: &lineage, Lineage: &lineage}))
	want(byOther.ID, "a version another coordinator aggregated")
	add(self.Signed(t, contenttest.Version{Parent: &lineage, Lineage: &lineage})) // its own: it has it
	nl := notMine.ID
	add(other.Signed(t, contenttest.Version{Parent: &nl, Lineage: &nl})) // another's lineage
	marker := add(pub.Signed(t, contenttest.Version{Parent: &lineage, Lineage: &lineage}))
	// The queue is in order: the next fetch is the marker, so nothing came in between.
	want(marker.ID, "the publisher's next version")
}
