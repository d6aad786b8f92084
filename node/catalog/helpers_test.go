package catalog

import (
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
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
	s, err := New(Config{Self: newSigner(t).id, MaxProviders: 8}, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, deps.Store
}

// signer is a peer identity that signs manifests in tests.
type signer struct {
	priv crypto.PrivKey
	id   peer.ID
}

func newSigner(t *testing.T) signer {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(priv)
	return signer{priv, id}
}

// version describes a test manifest: a root naming coords, or a child of parent claiming lineage.
type version struct {
	price, payee    string
	parent, lineage *content.ModelID
	coords          []peer.ID
	key             content.Key
}

// sign signs a one-chunk manifest for v with s's key.
func (s signer) sign(t *testing.T, v version) ([]byte, content.ModelID) {
	t.Helper()
	if v.price == "" {
		v.price = "1000"
	}
	if v.payee == "" {
		v.payee = "aaaaa-aa"
	}
	kc := v.key.Commitment()
	m := &content.Manifest{Name: "m", Size: 1, ChunkSize: content.MinChunkSize, Chunks: 1, Root: make([]byte, 32),
		KeyCommitment: kc[:], Salt: make([]byte, content.SaltSize), Price: v.price, Payee: content.Account{Owner: v.payee},
		CreatedAt: time.Now().UnixMilli()}
	rand.Read(m.Root) // distinct manifests
	if v.parent != nil {
		m.Parent, m.Lineage = v.parent[:], v.lineage[:]
	}
	for _, c := range v.coords {
		m.Coordinators = append(m.Coordinators, []byte(c))
	}
	signed, id, err := content.Sign(m, s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return signed, id
}

func first(b []byte, _ content.ModelID) []byte { return b }

func sha(b []byte) [32]byte { return sha256.Sum256(b) }
