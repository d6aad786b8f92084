package presence

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func newPeer(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Coordinators are the peers whose presence claims the role, this node first when it is one;
// the directory lists every announcement as stored.
func TestCoordinatorsAndDirectory(t *testing.T) {
	st := openStore(t)
	self, coord, trainer := newPeer(t), newPeer(t), newPeer(t)
	for id, roles := range map[peer.ID][]string{coord: {config.RoleCoordinator}, trainer: {config.RoleTrainer}} {
		if err := st.Put(store.PresenceKey(id.String()), &store.Presence{Roles: roles, Version: "v1", Received: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	s := New(Config{Self: self, Roles: []string{config.RoleTrainer}}, st, nil)
	if got := s.Coordinators(); len(got) != 1 || got[0] != coord {
		t.Errorf("Coordinators() on a trainer = %v, want [%s]", got, coord)
	}
	s = New(Config{Self: self, Roles: []string{config.RoleCoordinator}}, st, nil)
	if got := s.Coordinators(); len(got) != 2 || got[0] != self || got[1] != coord {
		t.Errorf("Coordinators() on a coordinator = %v, want [%s %s]", got, self, coord)
	}
	dir, err := s.Directory()
	if err != nil || len(dir) != 2 {
		t.Fatalf("Directory() = %v, %v; want 2 entries", dir, err)
	}
	for _, e := range dir {
		if e.Version != "v1" || (e.Peer != coord.String() && e.Peer != trainer.String()) {
			t.Errorf("directory entry %+v", e)
		}
	}
}

// TestDirectoryBounds: a flood of fresh peer IDs cannot grow the directory beyond MaxEntries (a
// newcomer replaces the peer heard from longest ago; a known peer's update replaces nothing), and
// peers not heard from for MaxAge are forgotten.
func TestDirectoryBounds(t *testing.T) {
	st := openStore(t)
	s := New(Config{Self: newPeer(t)}, st, nil)
	old := MaxEntries
	MaxEntries = 3
	t.Cleanup(func() { MaxEntries = old })
	base := time.Now().Add(-time.Hour)
	peers := []peer.ID{newPeer(t), newPeer(t), newPeer(t), newPeer(t)}
	for i, p := range peers[:3] {
		if err := s.keep(p, &store.Presence{Received: base.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	// peers[0] is heard again (now the newest), so peers[1] is the oldest when peers[3] arrives.
	if err := s.keep(peers[0], &store.Presence{Received: base.Add(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.keep(peers[3], &store.Presence{Received: base.Add(11 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	dir, err := s.Directory()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range dir {
		got[e.Peer] = true
	}
	if len(dir) != 3 || got[peers[1].String()] || !got[peers[0].String()] || !got[peers[2].String()] || !got[peers[3].String()] {
		t.Errorf("directory after a newcomer at the cap = %v, want peers 0, 2 and 3 (1 heard from longest ago replaced)", got)
	}
	if err := s.prune(base.Add(MaxAge + 5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if dir, _ := s.Directory(); len(dir) != 2 {
		t.Errorf("after pruning entries older than MaxAge the directory has %d entries, want 2 (peers 0 and 3)", len(dir))
	}
}
