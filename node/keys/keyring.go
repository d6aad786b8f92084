package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/internal/fsutil"
	"github.com/califusion/califusion/store"
)

// MasterKeyFile holds the key that wraps every content key this node stores.
const MasterKeyFile = "master.key"

// Keyring stores content keys encrypted at rest: AES-256-GCM under the node's master key, with
// the ModelID as associated data so a wrapped key cannot be moved to another model.
//
// It also keeps shares of threshold keys (PutShare: a coordinator's share, wrapped the same way
// under a separate prefix) and held keys: whole keys kept in memory only, never written to the
// store, that a coordinator rebuilt to run a round (Hold, Release, Close).
type Keyring struct {
	aead cipher.AEAD
	st   *store.Store

	heldMu sync.Mutex
	held   map[content.ModelID]content.Key
}

// LoadMasterKey reads the master key at path (the datadir's MasterKeyFile), creating it (0600)
// on first use.
func LoadMasterKey(path string) ([]byte, error) {
	raw, err := fsutil.ReadSecret(path)
	if errors.Is(err, os.ErrNotExist) {
		raw = make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		if err := fsutil.WriteFileAtomic(path, raw, 0o600); err != nil {
			return nil, err
		}
		return raw, nil
	}
	if err != nil {
		return nil, err
	}
	if len(raw) != 32 {
		return nil, fmt.Errorf("%s is %d bytes, want 32: it is damaged; restore it from a backup", MasterKeyFile, len(raw))
	}
	return raw, nil
}

// NewKeyring returns a keyring over st that wraps keys under master (32 bytes). It keeps no
// reference to master: the caller may clear it.
func NewKeyring(master []byte, st *store.Store) (*Keyring, error) {
	block, err := aes.NewCipher(master)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Keyring{aead: aead, st: st}, nil
}

// wrap encrypts k for model id.
func (r *Keyring) wrap(id content.ModelID, k content.Key) []byte {
	nonce := make([]byte, r.aead.NonceSize())
	rand.Read(nonce)
	return r.aead.Seal(nonce, nonce, k[:], id[:])
}

// Put stores k for model id inside tx.
func (r *Keyring) Put(tx *store.Tx, id content.ModelID, k content.Key) error {
	return tx.Put(store.KeyKey(id), r.wrap(id, k))
}

// Get returns the content key of model id (a held key first), or store.ErrNotFound.
func (r *Keyring) Get(id content.ModelID) (content.Key, error) {
	if k, ok := r.heldKey(id); ok {
		return k, nil
	}
	return r.getStored(id)
}

// getStored unwraps the stored key of model id.
func (r *Keyring) getStored(id content.ModelID) (content.Key, error) {
	var wrapped []byte
	if err := r.st.Get(store.KeyKey(id), &wrapped); err != nil {
		return content.Key{}, err
	}
	n := r.aead.NonceSize()
	if len(wrapped) < n {
		return content.Key{}, errors.New("stored key is damaged")
	}
	raw, err := r.aead.Open(nil, wrapped[:n], wrapped[n:], id[:])
	if err != nil || len(raw) != content.KeySize {
		return content.Key{}, errors.New("stored key does not unwrap: the master key or the store is damaged")
	}
	var k content.Key
	copy(k[:], raw)
	clear(raw)
	return k, nil
}

// Has reports whether the key of model id is held in memory or stored wrapped (without
// unwrapping it).
func (r *Keyring) Has(id content.ModelID) bool {
	if _, ok := r.heldKey(id); ok {
		return true
	}
	return r.Stored(id)
}

// Stored reports whether a wrapped key for model id is in the store (held keys do not count).
func (r *Keyring) Stored(id content.ModelID) bool {
	has, _ := r.st.Has(store.KeyKey(id))
	return has
}
