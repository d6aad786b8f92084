package catalog

import (
	"testing"
	"time"

	"github.com/califusion/califusion/node/content/contenttest"
)

func TestCatalogIndexListsInOrderAddedSince(t *testing.T) {
	x := &Index{}
	t0 := time.Now()
	for i, d := range []time.Duration{0, 2, 1, 5, 3} { // 1 and 3 arrive late
		x.note([32]byte{byte(i)}, t0.Add(d*time.Millisecond))
	}
	var got []byte
	x.Added(t0.Add(2*time.Millisecond), func(id [32]byte, at time.Time) bool {
		got = append(got, id[0])
		return true
	})
	if want := []byte{1, 4, 3}; string(got) != string(want) { // added at 2, 3, 5 ms
		t.Errorf("Added(since 2ms) = %v, want %v", got, want)
	}
	got = got[:0]
	x.Added(time.Time{}, func(id [32]byte, _ time.Time) bool { got = append(got, id[0]); return len(got) < 2 })
	if want := []byte{0, 2}; string(got) != string(want) {
		t.Errorf("Added(everything) stopped after two = %v, want %v", got, want)
	}
}

// The index New loads from the store lists the stored models oldest first, and
// serves their manifests.
func TestIndexFromStore(t *testing.T) {
	n, st := newCatalog(t, Deps{})
	pub := contenttest.NewSigner(t)
	var ids [][32]byte
	for range 3 {
		r, _, err := n.Add(pub.Signed(t, contenttest.Version{}), "test")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	again, err := New(Config{}, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	got := map[[32]byte]bool{}
	var last time.Time
	again.Index().Added(time.Time{}, func(id [32]byte, at time.Time) bool {
		if at.Before(last) {
			t.Errorf("Index().Added lists %x (added %v) after a model added %v", id[:4], at, last)
		}
		got[id], last = true, at
		return true
	})
	if len(got) != 3 || !got[ids[0]] || !got[ids[1]] || !got[ids[2]] {
		t.Errorf("Index().Added(everything) = %d models, want the 3 stored", len(got))
	}
	if b, ok := again.Index().Manifest(ids[1]); !ok || sha(b) != ids[1] {
		t.Errorf("Index().Manifest(%x) = %v, want its manifest", ids[1][:4], ok)
	}
	if _, ok := again.Index().Manifest([32]byte{1}); ok {
		t.Errorf("Index().Manifest(unknown) = ok, want not found")
	}
}
