package catalog

import (
	"context"
	"testing"

	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
)

// gatedRouting answers FindProvidersAsync on a channel the test feeds and closes.
type gatedRouting struct{ results chan peer.AddrInfo }

func (g *gatedRouting) FindProvidersAsync(context.Context, cid.Cid, int) <-chan peer.AddrInfo {
	return g.results
}

// ProvidersStream sends the announcer at once, before the DHT has answered, then the DHT's
// providers as they come (never this node, nor a provider twice), and closes when the DHT
// query ends.
func TestProvidersStream(t *testing.T) {
	a, b, c := contenttest.NewSigner(t), contenttest.NewSigner(t), contenttest.NewSigner(t)
	routing := &gatedRouting{results: make(chan peer.AddrInfo)}
	n, _ := newCatalog(t, Deps{Routing: routing})
	signed, id := a.Sign(t, contenttest.Version{})
	opened, _, err := n.Add(signed, "test")
	if err != nil {
		t.Fatal(err)
	}
	n.heard(opened, b.ID)
	stream := n.ProvidersStream(t.Context(), id)
	if p := <-stream; p != b.ID { // the DHT has sent nothing yet
		t.Fatalf("first provider = %s, want the announcer %s", p, b.ID)
	}
	for _, p := range []peer.ID{n.cfg.Self, b.ID, a.ID} {
		routing.results <- peer.AddrInfo{ID: p}
	}
	if p := <-stream; p != a.ID {
		t.Fatalf("second provider = %s, want the DHT's %s (this node and the repeated announcer left out)", p, a.ID)
	}
	routing.results <- peer.AddrInfo{ID: a.ID}
	routing.results <- peer.AddrInfo{ID: c.ID}
	if p := <-stream; p != c.ID {
		t.Fatalf("third provider = %s, want the DHT's %s (the repeat of %s left out)", p, c.ID, a.ID)
	}
	close(routing.results)
	if p, ok := <-stream; ok {
		t.Fatalf("after the DHT query ended the stream sent %s, want it closed", p)
	}

	// At MaxProviders the stream closes without waiting for the DHT.
	n.cfg.MaxProviders = 2
	routing.results = make(chan peer.AddrInfo) // never closed: the query runs on
	stream = n.ProvidersStream(t.Context(), id)
	if p := <-stream; p != b.ID {
		t.Fatalf("first provider = %s, want the announcer %s", p, b.ID)
	}
	routing.results <- peer.AddrInfo{ID: c.ID}
	if p := <-stream; p != c.ID {
		t.Fatalf("second provider = %s, want the DHT's %s", p, c.ID)
	}
	if p, ok := <-stream; ok {
		t.Fatalf("after MaxProviders the stream sent %s, want it closed", p)
	}
}

// The announcers remembered per model are bounded: a flood of fresh authors re-announcing one
// model does not grow the set beyond maxAnnouncers, and the first ones stay.
func TestAnnouncersBounded(t *testing.T) {
	a, first := contenttest.NewSigner(t), contenttest.NewSigner(t)
	n, _ := newCatalog(t, Deps{})
	signed, id := a.Sign(t, contenttest.Version{})
	opened, _, err := n.Add(signed, "test")
	if err != nil {
		t.Fatal(err)
	}
	n.heard(opened, first.ID)
	for range 2 * maxAnnouncers {
		n.heard(opened, contenttest.NewSigner(t).ID)
	}
	n.mu.Lock()
	got, kept := len(n.announced[id]), n.announced[id][first.ID]
	n.mu.Unlock()
	if got != maxAnnouncers || !kept {
		t.Errorf("announcers of one model after %d = %d (first kept: %v), want %d with the first", 2*maxAnnouncers+1, got, kept, maxAnnouncers)
	}
}

// The connected publisher is sent even when MaxProviders announcers are known: announcers are any
// peers, and they must not crowd out the most likely seeder.
func TestProvidersStreamPublisherFirst(t *testing.T) {
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	pub := contenttest.NewSigner(t)
	hp, err := mn.AddPeer(pub.Priv, ma.StringCast("/ip4/127.0.0.1/tcp/4001"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := mn.ConnectPeers(h.ID(), hp.ID()); err != nil {
		t.Fatal(err)
	}
	n, _ := newCatalog(t, Deps{Host: h})
	signed, id := pub.Sign(t, contenttest.Version{})
	opened, _, err := n.Add(signed, "test")
	if err != nil {
		t.Fatal(err)
	}
	for range n.cfg.MaxProviders {
		n.heard(opened, contenttest.NewSigner(t).ID)
	}
	var got []peer.ID
	for p := range n.ProvidersStream(t.Context(), id) {
		got = append(got, p)
	}
	if len(got) != n.cfg.MaxProviders || got[0] != pub.ID {
		t.Errorf("providers = %v, want %d starting with the connected publisher %s", got, n.cfg.MaxProviders, pub.ID)
	}
}
