package fetch

import (
	"bytes"
	"testing"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/jobs"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// The fetch starts with the first provider found, one that does not hold the model; the only
// one that does is found later, in the same search: its leaves and chunks are asked for, and the
// fetch finishes while the search still runs.
func TestFetchTakesProvidersFoundLater(t *testing.T) {
	mn, err := mocknet.FullMeshConnected(3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	hosts := mn.Hosts()
	pub, tr, empty := newFixture(t, hosts[0]), newFixture(t, hosts[1]), newFixture(t, hosts[2])
	for _, f := range []*fixture{pub, empty} {
		if err := f.svc.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	plain := randomModel(24 * content.MinChunkSize)
	rec, key := pub.publish(t, plain, "later", true)
	got := &catalog.Record{ID: rec.ID, Manifest: rec.Manifest, Signed: rec.Signed, Source: "gossip"}
	got.Root = got
	tr.catalog.add(got)
	tr.keys.put(rec.ID, key)
	later := make(chan peer.ID)
	tr.catalog.providers, tr.catalog.later = []peer.ID{hosts[2].ID()}, later
	done := make(chan error, 1)
	go func() { done <- tr.svc.fetch(t.Context(), got, func(jobs.Progress) {}) }()
	select {
	case later <- hosts[0].ID():
	case err := <-done:
		t.Fatalf("fetch ended before the publisher was found: %v", err)
	}
	if err := <-done; err != nil { // later stays open: the search has not ended
		t.Fatalf("fetch = %v", err)
	}
	if back, err := tr.svc.Plaintext(rec.ID); err != nil || !bytes.Equal(back, plain) {
		t.Fatalf("Plaintext of the fetched model = %d bytes, %v; want the published plaintext", len(back), err)
	}
}
