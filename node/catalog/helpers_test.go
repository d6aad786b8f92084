package catalog

import (
	"crypto/sha256"
	"testing"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/store"
)

// newCatalog is a catalog over a fresh store in a temp dir, with deps' other fields as given.
func newCatalog(t *testing.T, deps Deps) (*Service, *store.Store) {
	t.Helper()
	if deps.Store == nil {
		st, err := store.Open(t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		deps.Store = st
	}
	s, err := New(Config{Self: contenttest.NewSigner(t).ID, MaxProviders: 8}, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, deps.Store
}

func first(b []byte, _ content.ModelID) []byte { return b }

func sha(b []byte) [32]byte { return sha256.Sum256(b) }
