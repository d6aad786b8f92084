package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/store"
)

// TestKeyring: a key put is got back; an unknown model is store.ErrNotFound; a wrapped key moved
// under another model, or read under another master key, does not unwrap.
func TestKeyring(t *testing.T) {
	st := newStore(t)
	kr := newKeyringOn(t, st)
	k, _ := content.NewKey()
	a, b := content.ModelID{1}, content.ModelID{2}
	if _, err := kr.Get(a); !errors.Is(err, store.ErrNotFound) || kr.Has(a) {
		t.Fatalf("Get(unknown) = %v (Has %v), want store.ErrNotFound", err, kr.Has(a))
	}
	if err := st.Update(func(tx *store.Tx) error { return kr.Put(tx, a, k) }); err != nil {
		t.Fatal(err)
	}
	if got, err := kr.Get(a); err != nil || got != k || !kr.Has(a) {
		t.Fatalf("Get(a) = %x, %v; want the key put", got[:4], err)
	}
	var wrapped []byte
	if err := st.Get(store.KeyKey(a), &wrapped); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wrapped, k[:]) {
		t.Errorf("the stored key is not wrapped")
	}
	if err := st.Put(store.KeyKey(b), wrapped); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Get(b); err == nil || !strings.Contains(err.Error(), "does not unwrap") {
		t.Errorf("Get(a's key moved to b) = %v, want it not to unwrap", err)
	}
	if _, err := newKeyringOn(t, st).Get(a); err == nil {
		t.Errorf("Get under another master key = nil error, want it not to unwrap")
	}
	if err := st.Put(store.KeyKey(b), []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Get(b); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("Get(truncated) = %v, want damaged", err)
	}
}

// TestLoadMasterKey: the master key is created 0600 on first use and read back after; a file of
// the wrong size is refused with a message that names it.
func TestLoadMasterKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), MasterKeyFile)
	m1, err := LoadMasterKey(path)
	if err != nil || len(m1) != 32 {
		t.Fatalf("LoadMasterKey(new) = %d bytes, %v; want 32", len(m1), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("master key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if m2, err := LoadMasterKey(path); err != nil || !bytes.Equal(m1, m2) {
		t.Errorf("LoadMasterKey(again) = %x, %v; want the same key", m2, err)
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadMasterKey(path); err == nil || !strings.Contains(err.Error(), MasterKeyFile) {
		t.Errorf("LoadMasterKey(5 bytes) = %v, want a refusal naming %s", err, MasterKeyFile)
	}
}
