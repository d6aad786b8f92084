package node

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/store"
)

// MasterKeyFile holds the key that wraps every content key this node stores.
const MasterKeyFile = "master.key"

// keyring stores content keys encrypted at rest: AES-256-GCM under the node's master key, with
// the ModelID as associated data so a wrapped key cannot be moved to another model.
type keyring struct {
	aead cipher.AEAD
	st   *store.Store
}

// loadMasterKey reads the master key, creating it (0600) on first use.
func loadMasterKey(dir *Datadir) ([]byte, error) {
	path := dir.Join(MasterKeyFile)
	raw, err := readSecret(path)
	if errors.Is(err, os.ErrNotExist) {
		raw = make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(path, raw, 0o600); err != nil {
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

func newKeyring(master []byte, st *store.Store) (*keyring, error) {
	block, err := aes.NewCipher(master)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &keyring{aead: aead, st: st}, nil
}

// wrap encrypts k for model id.
func (r *keyring) wrap(id content.ModelID, k content.Key) []byte {
	nonce := make([]byte, r.aead.NonceSize())
	rand.Read(nonce)
	return r.aead.Seal(nonce, nonce, k[:], id[:])
}

// put stores k for model id inside tx.
func (r *keyring) put(tx *store.Tx, id content.ModelID, k content.Key) error {
	return tx.Put(store.KeyKey(id), r.wrap(id, k))
}

// get returns the content key of model id, or store.ErrNotFound.
func (r *keyring) get(id content.ModelID) (content.Key, error) {
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
