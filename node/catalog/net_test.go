package catalog

import (
	"errors"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/store"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// netCatalog is a started catalog on h with gossipsub, over a fresh store.
func netCatalog(t *testing.T, h host.Host) *Service {
	t.Helper()
	ps, err := pubsub.NewGossipSub(t.Context(), h)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(Config{MaxProviders: 8}, Deps{Store: st, Host: h, PubSub: ps})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A node that joins late reads what came before from a peer's catalog; what is published after
// reaches it by gossip, and the announcer becomes a provider.
func TestSyncAndAnnounce(t *testing.T) {
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	ha, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	hb, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	a, b := netCatalog(t, ha), netCatalog(t, hb)
	pub := contenttest.NewSigner(t)
	before, _, err := a.Add(pub.Signed(t, contenttest.Version{}), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := mn.ConnectPeers(ha.ID(), hb.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if r, err := b.Get(before.ID); err != nil || r.Source != "catalog" {
			return errors.New("the late joiner did not read the model from its peer's catalog")
		}
		return nil
	})
	after, _, err := a.Add(pub.Signed(t, contenttest.Version{}), "test")
	if err != nil {
		t.Fatal(err)
	}
	// The mesh forms after a heartbeat; repeat the announcement until it is heard (a catalog
	// resync may bring the model first: only an announcement makes its sender a provider).
	waitFor(t, 15*time.Second, func() error {
		a.Announce(t.Context(), after)
		if got := b.Providers(t.Context(), after.ID); len(got) != 1 || got[0] != ha.ID() {
			return errors.New("the announcement did not reach the peer")
		}
		return nil
	})
	if !b.Known(after.ID) {
		t.Errorf("the announced model is not in the peer's catalog")
	}
}
