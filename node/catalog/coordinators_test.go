package catalog

import (
	"errors"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestSetCoordinators: the root's publisher's update replaces the lineage's coordinator set for
// Authorises and CoordinatorSet (highest seq wins), survives a reopen, and lets a new
// coordinator sign versions; an update by anyone else, an older one or one for an unknown
// lineage is refused.
func TestSetCoordinators(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n, _ := newCatalog(t, Deps{Store: st})
	pub, old, added, stranger := contenttest.NewSigner(t), contenttest.NewSigner(t), contenttest.NewSigner(t), contenttest.NewSigner(t)
	rootSigned, root := pub.Sign(t, contenttest.Version{Coords: []peer.ID{old.ID}})
	if _, _, err := n.Add(rootSigned, "test"); err != nil {
		t.Fatal(err)
	}
	update := func(s contenttest.Signer, lineage content.ModelID, seq uint64, t2 uint, coords ...peer.ID) []byte {
		u := &content.CoordinatorUpdate{Lineage: lineage[:], Seq: seq, Threshold: t2, CreatedAt: time.Now().UnixMilli()}
		for _, c := range coords {
			u.Coordinators = append(u.Coordinators, []byte(c))
		}
		b, err := content.SignCoordinatorUpdate(u, s.Priv)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Before: the new coordinator may not sign a version.
	childBy := func(s contenttest.Signer) []byte {
		return s.Signed(t, contenttest.Version{Parent: &root, Lineage: &root})
	}
	if _, _, err := n.Add(childBy(added), "test"); !errors.Is(err, ErrLineage) {
		t.Fatalf("version by a coordinator not yet added = %v, want ErrLineage", err)
	}
	up1 := update(pub, root, 1, 2, old.ID, added.ID)
	if _, changed, err := n.SetCoordinators(up1); err != nil || !changed {
		t.Fatalf("SetCoordinators(seq 1) = %v, %v", changed, err)
	}
	rec, _ := n.Get(root)
	if ids, th := rec.CoordinatorSet(); len(ids) != 2 || th != 2 || !rec.Authorises(added.ID) || !rec.ThresholdLineage() {
		t.Errorf("after the update: set %v, threshold %d; want both coordinators, 2", ids, th)
	}
	if _, _, err := n.Add(childBy(added), "test"); err != nil {
		t.Errorf("version by the added coordinator = %v, want admitted", err)
	}
	if _, changed, err := n.SetCoordinators(up1); err != nil || changed {
		t.Errorf("the same update again = %v, %v; want no change", changed, err)
	}
	for _, tt := range []struct {
		name string
		b    []byte
		want error
	}{
		{"signed by a stranger", update(stranger, root, 5, 0, stranger.ID), content.ErrCoordinatorUpdate},
		{"an older seq", update(pub, root, 1, 0, old.ID), ErrStaleUpdate},
		{"unknown lineage", update(pub, content.ModelID{9}, 2, 0, old.ID), ErrUnknownLineage},
	} {
		if _, _, err := n.SetCoordinators(tt.b); !errors.Is(err, tt.want) {
			t.Errorf("%s: SetCoordinators = %v, want %v", tt.name, err, tt.want)
		}
	}
	// Removed by seq 2: the old coordinator no longer counts as one (its versions still verify).
	if _, _, err := n.SetCoordinators(update(pub, root, 2, 0, added.ID)); err != nil {
		t.Fatal(err)
	}
	if rec.IsCoordinator(old.ID) || !rec.IsCoordinator(added.ID) {
		t.Errorf("after seq 2: old is coordinator %v, added %v", rec.IsCoordinator(old.ID), rec.IsCoordinator(added.ID))
	}
	// A fresh catalog over the same store reads the update back.
	n2, err := New(Config{Self: contenttest.NewSigner(t).ID}, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	rec2, err := n2.Get(root)
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := rec2.CoordinatorSet(); len(ids) != 1 || ids[0] != added.ID {
		t.Errorf("after reopening: set %v, want seq 2's", ids)
	}
}
