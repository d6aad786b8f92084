package catalog

import (
	"errors"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/store"
)

// TestForget: a parent of a known version is not forgotten; a leaf version is, from the store,
// the verified cache and the index (catalog sync no longer offers it), and it can be added again.
func TestForget(t *testing.T) {
	n, st := newCatalog(t, Deps{})
	pub := contenttest.NewSigner(t)
	rootSigned, root := pub.Sign(t, contenttest.Version{Price: "1", Payee: "aaaaa-aa"})
	if _, _, err := n.Add(rootSigned, "test"); err != nil {
		t.Fatal(err)
	}
	childSigned, child := pub.Sign(t, contenttest.Version{Parent: &root, Lineage: &root})
	if _, added, err := n.Add(childSigned, "test"); err != nil || !added {
		t.Fatalf("Add(child) = %v, %v", added, err)
	}
	if kids, err := n.Children(root); err != nil || len(kids) != 1 || kids[0].ID != child {
		t.Fatalf("Children(root) = %v, %v; want the child", kids, err)
	}
	if err := n.Forget(root); !errors.Is(err, ErrHasChildren) {
		t.Errorf("Forget(parent) = %v, want ErrHasChildren", err)
	}
	if err := n.Forget(content.ModelID{9}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Forget(unknown) = %v, want store.ErrNotFound", err)
	}
	if err := n.Forget(child); err != nil {
		t.Fatalf("Forget(child) = %v", err)
	}
	if _, err := n.Get(child); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(forgotten) = %v, want store.ErrNotFound", err)
	}
	if n.Known(child) {
		t.Errorf("Known(forgotten) = true")
	}
	if has, _ := st.Has(store.ModelKey(child)); has {
		t.Errorf("the forgotten model's record is still in the store")
	}
	var listed []content.ModelID
	n.Index().Added(time.Time{}, func(id [32]byte, _ time.Time) bool { listed = append(listed, id); return true })
	if len(listed) != 1 || listed[0] != root {
		t.Errorf("index after Forget = %x, want only the root", listed)
	}
	if all, _ := n.All(); len(all) != 1 {
		t.Errorf("All after Forget = %d records, want 1", len(all))
	}
	if err := n.Forget(root); err != nil {
		t.Errorf("Forget(root without children) = %v", err)
	}
	if _, added, err := n.Add(childSigned, "test"); !errors.Is(err, ErrUnknownParent) || added {
		t.Errorf("Add(child of a forgotten root) = %v, %v; want ErrUnknownParent", added, err)
	}
	if _, added, err := n.Add(rootSigned, "test"); err != nil || !added {
		t.Errorf("Add(forgotten root again) = %v, %v; want added", added, err)
	}
}
