package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOutside: a path whose folder resolves to the datadir or into it, through symlinks or
// "..", is refused with ErrInside; a sibling of the datadir is not inside it.
func TestOutside(t *testing.T) {
	dir := t.TempDir()
	const storeDir, tokenFile = "store", "rpc.token" // node.StoreDir, adminrpc.TokenFile
	if err := os.WriteFile(filepath.Join(dir, tokenFile), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	link := filepath.Join(elsewhere, "into-datadir")
	if err := os.Symlink(filepath.Join(dir, storeDir), link); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, storeDir), 0o700)
	for _, c := range []struct {
		path string
		ok   bool
	}{
		{filepath.Join(dir, tokenFile), false},
		{filepath.Join(dir, "model.bin"), false},
		{filepath.Join(dir, storeDir, "x"), false},
		{dir, false},
		{filepath.Join(link, "x"), false},
		{filepath.Join(elsewhere, "..", filepath.Base(elsewhere), "model.bin"), true},
		{dir + "-sibling", true},
	} {
		_, err := Outside(dir, c.path)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrInside) {
			t.Errorf("Outside(%s) = %v, want ok %v", c.path, err, c.ok)
		}
	}
}
