package keys

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/store"
)

// shareAAD binds a wrapped share to its model and to being a share (never a whole key).
func shareAAD(id content.ModelID) []byte { return append([]byte("califusion/share/"), id[:]...) }

// PutShare stores, inside tx, this node's share y at index (0-based among the version's share
// holders) of model id's key, wrapped under the master key.
func (r *Keyring) PutShare(tx *store.Tx, id content.ModelID, index uint, y []byte) error {
	if index > 255 || len(y) != content.KeySize {
		return errors.New("a key share is a 32-byte value at an index below 256")
	}
	plain := append([]byte{byte(index)}, y...)
	defer clear(plain)
	nonce := make([]byte, r.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	return tx.Put(store.ShareKey(id), r.aead.Seal(nonce, nonce, plain, shareAAD(id)))
}

// GetShare returns this node's share of model id's key and its index, or store.ErrNotFound.
func (r *Keyring) GetShare(id content.ModelID) (index uint, y []byte, err error) {
	var wrapped []byte
	if err := r.st.Get(store.ShareKey(id), &wrapped); err != nil {
		return 0, nil, err
	}
	n := r.aead.NonceSize()
	if len(wrapped) < n {
		return 0, nil, errors.New("stored key share is damaged")
	}
	raw, err := r.aead.Open(nil, wrapped[:n], wrapped[n:], shareAAD(id))
	if err != nil || len(raw) != 1+content.KeySize {
		return 0, nil, errors.New("stored key share does not unwrap: the master key or the store is damaged")
	}
	return uint(raw[0]), raw[1:], nil
}

// HasShare reports whether a share of model id's key is stored.
func (r *Keyring) HasShare(id content.ModelID) bool {
	has, _ := r.st.Has(store.ShareKey(id))
	return has
}

// Hold keeps k as model id's key in memory only (Get and Has see it; it is never written to the
// store): a coordinator of a threshold lineage that rebuilt a version's key to run a round on
// it. Release or Close wipes it.
func (r *Keyring) Hold(id content.ModelID, k content.Key) {
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	if r.held == nil {
		r.held = map[content.ModelID]content.Key{}
	}
	r.held[id] = k
}

// Holds reports whether model id's key is held in memory.
func (r *Keyring) Holds(id content.ModelID) bool {
	_, ok := r.heldKey(id)
	return ok
}

// Release wipes the held key of model id, if any; the stored key, if any, stays.
func (r *Keyring) Release(id content.ModelID) {
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	if k, ok := r.held[id]; ok {
		k.Wipe()
		delete(r.held, id)
	}
}

// Forget wipes the held key of model id and deletes its stored key and share.
func (r *Keyring) Forget(id content.ModelID) error {
	r.Release(id)
	return r.st.Update(func(tx *store.Tx) error {
		if err := tx.Delete(store.KeyKey(id)); err != nil {
			return err
		}
		return tx.Delete(store.ShareKey(id))
	})
}

// Close wipes every held key. It is idempotent.
func (r *Keyring) Close() error {
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	for id, k := range r.held {
		k.Wipe()
		delete(r.held, id)
	}
	return nil
}

func (r *Keyring) heldKey(id content.ModelID) (content.Key, bool) {
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	k, ok := r.held[id]
	return k, ok
}

// StoredKeys calls fn with every whole key in the store (held keys aside), unwrapped: what an
// audit of a datadir checks (a coordinator of a threshold lineage stores none of its keys).
func (r *Keyring) StoredKeys(fn func(id content.ModelID, k content.Key) error) error {
	var ids []content.ModelID
	err := r.st.Scan(store.KeyPrefix(), func(key store.Key, _ func(any) error) error {
		raw, err := hex.DecodeString(strings.TrimPrefix(string(key), string(store.KeyPrefix())))
		if err != nil || len(raw) != 32 {
			return fmt.Errorf("stored key under %q: not a model ID", key)
		}
		ids = append(ids, content.ModelID(raw))
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		k, err := r.getStored(id)
		if err != nil {
			return err
		}
		err = fn(id, k)
		k.Wipe()
		if err != nil {
			return err
		}
	}
	return nil
}
