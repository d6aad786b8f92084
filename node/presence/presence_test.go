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
