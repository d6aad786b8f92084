package node

import (
	"context"
	"fmt"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/publish"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A burst of publishes is batched on its way to the DHT provider; every model must still be
// findable in the DHT by a node that only asks the DHT.
func TestPublishedModelsAreFoundInTheDHT(t *testing.T) {
	pub, a, b := startNode(t, "publisher"), startNode(t, "trainer"), startNode(t, "trainer")
	for _, n := range []*Node{a, b} {
		if err := n.host.Connect(t.Context(), peer.AddrInfo{ID: pub.host.ID(), Addrs: pub.host.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.host.Connect(t.Context(), peer.AddrInfo{ID: a.host.ID(), Addrs: a.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	var ids []content.ModelID
	for i := range 5 {
		path := filepath.Join(t.TempDir(), "m.bin")
		if err := os.WriteFile(path, []byte(fmt.Sprintf("model %d", i)), 0o600); err != nil {
			t.Fatal(err)
		}
		rec, err := pub.publish.Publish(t.Context(), publish.Params{Path: path, Name: "m", Price: "1"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID)
	}
	deadline := time.Now().Add(45 * time.Second)
	for _, id := range ids {
		for {
			if providedBy(t.Context(), b, id, pub.host.ID()) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("model %x: the DHT never named its publisher as a provider", id[:6])
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// providedBy reports whether n's DHT names p as a provider of model id.
func providedBy(ctx context.Context, n *Node, id content.ModelID, p peer.ID) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for ai := range n.dht.FindProvidersAsync(ctx, catalog.ModelCID(id), 0) {
		if ai.ID == p {
			return true
		}
	}
	return false
}

// A model published while its node has no peers is provided once the node has some.
func TestModelPublishedAloneIsProvidedOnceOnline(t *testing.T) {
	pub := startNode(t, "publisher")
	path := filepath.Join(t.TempDir(), "m.bin")
	if err := os.WriteFile(path, []byte("published alone"), 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := pub.publish.Publish(t.Context(), publish.Params{Path: path, Name: "m", Price: "1"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * catalog.ProvideBatch) // the batch reached the provider while the node was alone
	a, b := startNode(t, "trainer"), startNode(t, "trainer")
	for _, n := range []*Node{a, b} {
		if err := n.host.Connect(t.Context(), peer.AddrInfo{ID: pub.host.ID(), Addrs: pub.host.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.host.Connect(t.Context(), peer.AddrInfo{ID: a.host.ID(), Addrs: a.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(45 * time.Second)
	for !providedBy(t.Context(), b, rec.ID, pub.host.ID()) {
		if time.Now().After(deadline) {
			t.Fatal("a model published while alone was never provided after peers connected")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
