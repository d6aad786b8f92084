package node

import (
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/internal/fsutil"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// Files and folders inside a datadir.
const (
	IdentityFile = "identity.key"
	ConfigFile   = "config.toml"
	LockFile     = "lock"
	StoreDir     = "store"
)

// LockedError is returned when another daemon holds the datadir.
type LockedError struct {
	Dir string
	PID int // 0 when unknown
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = fmt.Sprintf("another califusiond (pid %d)", e.PID)
	}
	return fmt.Sprintf("datadir %s is in use by %s: stop it first or use another --datadir", e.Dir, who)
}

// Datadir is an opened, locked node directory.
type Datadir struct {
	Path string
	lock *os.File
}

// Init creates a datadir at dir (mode 0700) with a new Ed25519 identity (0600), an RPC token (0600)
// and cfg written as config.toml. It refuses to touch a directory that already has an identity.
func Init(dir string, cfg *config.Config) (crypto.PrivKey, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, IdentityFile)); err == nil {
		return nil, fmt.Errorf("%s already holds a node identity; refusing to overwrite it (use another --datadir, or delete the directory to start over)", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create datadir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict datadir to its owner: %w", err)
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode identity: %w", err)
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("generate rpc token: %w", err)
	}
	conf, err := cfg.Encode()
	if err != nil {
		return nil, err
	}
	// The identity goes last: its presence is what marks the datadir as initialised.
	if err := newToken(dir, tok); err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, ConfigFile), conf, 0o600); err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, IdentityFile), raw, 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// OpenDatadir locks an initialised datadir for this process. A second daemon on the same datadir
// gets a *LockedError with a sentence saying which process holds it.
func OpenDatadir(dir string) (*Datadir, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(abs, IdentityFile)); err != nil {
		return nil, fmt.Errorf("%s is not an initialised datadir (no %s): run `califusiond init --datadir %s` first", abs, IdentityFile, dir)
	}
	if err := restrictTree(abs); err != nil {
		return nil, fmt.Errorf("datadir %s is readable by others and could not be restricted: %w", abs, err)
	}
	f, err := os.OpenFile(filepath.Join(abs, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(filepath.Join(abs, LockFile))
		f.Close()
		pid, _ := strconv.Atoi(strings.TrimSpace(string(holder)))
		return nil, &LockedError{Dir: abs, PID: pid}
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Datadir{Path: abs, lock: f}, nil
}

// restrictTree takes group and other permissions off every folder and file under root, root
// included (a datadir from an older version held badger files 0644). New files stay private
// through the daemon's umask and the explicit modes they are created with.
func restrictTree(root string) error {
	return filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type()&fs.ModeSymlink != 0 || !e.IsDir() && !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			return os.Chmod(path, perm&0o700)
		}
		return nil
	})
}

// Close releases the lock.
func (d *Datadir) Close() error {
	if d.lock == nil {
		return nil
	}
	d.lock.Truncate(0)
	err := d.lock.Close() // closing the descriptor releases the flock
	d.lock = nil
	return err
}

// Join returns a path inside the datadir.
func (d *Datadir) Join(elem ...string) string {
	return filepath.Join(append([]string{d.Path}, elem...)...)
}

// Identity loads the node's private key.
func (d *Datadir) Identity() (crypto.PrivKey, error) {
	raw, err := fsutil.ReadSecret(d.Join(IdentityFile))
	if err != nil {
		return nil, err
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", IdentityFile, err)
	}
	return key, nil
}
