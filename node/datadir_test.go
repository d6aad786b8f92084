package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/protocols/adminrpc"
)

func TestInitModesAndRefusal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dd")
	if _, err := Init(dir, config.Default()); err != nil {
		t.Fatalf("Init = %v", err)
	}
	modes := map[string]os.FileMode{"": 0o700, IdentityFile: 0o600, adminrpc.TokenFile: 0o600, ConfigFile: 0o600}
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %q = %o, want %o", name, got, want)
		}
	}
	before, _ := os.ReadFile(filepath.Join(dir, IdentityFile))
	if _, err := Init(dir, config.Default()); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second Init = %v, want refusal", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, IdentityFile))
	if string(before) != string(after) {
		t.Errorf("second Init changed the identity")
	}
	if _, err := config.Load(filepath.Join(dir, ConfigFile)); err != nil {
		t.Errorf("config written by Init does not load: %v", err)
	}
}

func TestDatadirLock(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, config.Default()); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDatadir(dir)
	if err != nil {
		t.Fatalf("OpenDatadir = %v", err)
	}
	_, err = OpenDatadir(dir)
	var locked *LockedError
	if !errors.As(err, &locked) || locked.PID != os.Getpid() {
		t.Fatalf("second OpenDatadir = %v, want LockedError naming pid %d", err, os.Getpid())
	}
	d.Close()
	d2, err := OpenDatadir(dir)
	if err != nil {
		t.Fatalf("OpenDatadir after Close = %v", err)
	}
	d2.Close()
}

func TestOpenUninitialised(t *testing.T) {
	if _, err := OpenDatadir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "califusiond init") {
		t.Errorf("OpenDatadir(empty) = %v, want a hint to run init", err)
	}
}

func TestSecretsAreTightened(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, config.Default()); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, IdentityFile), 0o644)
	os.Chmod(dir, 0o755)
	d, err := OpenDatadir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Identity(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"": 0o700, IdentityFile: 0o600} {
		fi, _ := os.Stat(filepath.Join(dir, name))
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %q after open = %o, want %o", name, got, want)
		}
	}
}

func TestOpenDatadirRestrictsOldFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, config.Default()); err != nil {
		t.Fatal(err)
	}
	// What an older daemon left behind: badger files 0644 in a 0755 folder.
	os.Mkdir(filepath.Join(dir, StoreDir), 0o755)
	os.Chmod(filepath.Join(dir, StoreDir), 0o755)
	os.WriteFile(filepath.Join(dir, StoreDir, "000001.vlog"), []byte("x"), 0o644)
	os.Chmod(filepath.Join(dir, StoreDir, "000001.vlog"), 0o644)
	d, err := OpenDatadir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, name := range []string{StoreDir, filepath.Join(StoreDir, "000001.vlog"), LockFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("mode of %s after OpenDatadir = %o, want no group or other bits", name, fi.Mode().Perm())
		}
	}
}
