package content_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/libp2p/go-libp2p/core/peer"
)

func rootFor(t testing.TB, pub contenttest.Signer) (*content.Manifest, content.ModelID) {
	k, _ := content.NewKey()
	signed, id := pub.Sign(t, contenttest.Version{Coords: []peer.ID{contenttest.NewSigner(t).ID}, Key: k})
	m, _, err := content.Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	return m, id
}

func TestCoordinatorUpdate(t *testing.T) {
	pub, other := contenttest.NewSigner(t), contenttest.NewSigner(t)
	root, id := rootFor(t, pub)
	a, b := contenttest.NewSigner(t).ID, contenttest.NewSigner(t).ID
	u := &content.CoordinatorUpdate{Lineage: id[:], Seq: 1, Coordinators: [][]byte{[]byte(a), []byte(b)}, Threshold: 2, CreatedAt: time.Now().UnixMilli()}
	signed, err := content.SignCoordinatorUpdate(u, pub.Priv)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := content.CoordinatorUpdateLineage(signed); err != nil || l != id {
		t.Errorf("CoordinatorUpdateLineage = %x, %v", l[:4], err)
	}
	got, err := content.OpenCoordinatorUpdate(signed, id, root)
	if err != nil || got.Seq != 1 || got.Threshold != 2 || len(got.CoordinatorIDs()) != 2 || got.CoordinatorIDs()[1] != b {
		t.Fatalf("OpenCoordinatorUpdate = %+v, %v", got, err)
	}
	forged, _ := content.SignCoordinatorUpdate(u, other.Priv)
	if _, err := content.OpenCoordinatorUpdate(forged, id, root); !errors.Is(err, content.ErrCoordinatorUpdate) || !strings.Contains(err.Error(), "not signed by the lineage's publisher") {
		t.Errorf("update signed by another = %v, want refused", err)
	}
	otherRoot, otherID := rootFor(t, pub)
	if _, err := content.OpenCoordinatorUpdate(signed, otherID, otherRoot); err == nil {
		t.Errorf("update opened for another lineage = nil error")
	}
	for _, bad := range []*content.CoordinatorUpdate{
		{Lineage: id[:], Seq: 0, CreatedAt: 1},
		{Lineage: id[:], Seq: 1, Coordinators: [][]byte{[]byte(a)}, Threshold: 2, CreatedAt: 1},
		{Lineage: id[:], Seq: 1, Coordinators: [][]byte{[]byte(a), []byte(a)}, CreatedAt: 1},
		{Lineage: id[:4], Seq: 1, CreatedAt: 1},
	} {
		if _, err := content.SignCoordinatorUpdate(bad, pub.Priv); !errors.Is(err, content.ErrCoordinatorUpdate) {
			t.Errorf("SignCoordinatorUpdate(%+v) = %v, want ErrCoordinatorUpdate", bad, err)
		}
	}
}

// FuzzOpenCoordinatorUpdate opens arbitrary bytes as a coordinator does a received update: it
// never panics, and what opens re-encodes to the same bytes.
func FuzzOpenCoordinatorUpdate(f *testing.F) {
	pub := contenttest.NewSigner(f)
	root, id := rootFor(f, pub)
	signed, err := content.SignCoordinatorUpdate(&content.CoordinatorUpdate{Lineage: id[:], Seq: 3, Coordinators: [][]byte{[]byte(pub.ID)}, CreatedAt: 1}, pub.Priv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa2, 0x01, 0x40, 0x02, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		content.CoordinatorUpdateLineage(b)
		u, err := content.OpenCoordinatorUpdate(b, id, root)
		if err != nil {
			return
		}
		again, err := content.SignCoordinatorUpdate(u, pub.Priv)
		if err != nil {
			t.Fatalf("an update that opened does not sign again: %v", err)
		}
		if _, err := content.OpenCoordinatorUpdate(again, id, root); err != nil {
			t.Fatalf("re-signed update does not open: %v", err)
		}
	})
}
