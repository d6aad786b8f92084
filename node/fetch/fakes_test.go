package fetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/store"
	"github.com/califusion/califusion/store/blob"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fakeCatalog is a Catalog over a map, with a fixed provider list.
type fakeCatalog struct {
	mu        sync.Mutex
	recs      map[content.ModelID]*catalog.Record
	providers []peer.ID
	provided  []content.ModelID
	remote    map[content.ModelID]*catalog.Record // what Resolve finds on the "network"
	later     chan peer.ID                        // when set, ProvidersStream forwards it after providers, until it closes
}

func newFakeCatalog(recs ...*catalog.Record) *fakeCatalog {
	c := &fakeCatalog{recs: map[content.ModelID]*catalog.Record{}}
	for _, r := range recs {
		c.add(r)
	}
	return c
}

func (c *fakeCatalog) add(r *catalog.Record) {
	c.mu.Lock()
	c.recs[r.ID] = r
	c.mu.Unlock()
}

func (c *fakeCatalog) Get(id content.ModelID) (*catalog.Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.recs[id]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("%w: model %x", store.ErrNotFound, id[:6])
}

// Resolve is Get, then the models on the "network" (remote), which it adds to the catalog.
func (c *fakeCatalog) Resolve(_ context.Context, id content.ModelID) (*catalog.Record, error) {
	if r, err := c.Get(id); err == nil {
		return r, nil
	}
	c.mu.Lock()
	r, ok := c.remote[id]
	c.mu.Unlock()
	if !ok {
		return nil, apierr.Errorf(apierr.NotFound, "no peer on the network knows model %s: asked 0 peers and the DHT", hex.EncodeToString(id[:]))
	}
	c.add(r)
	return r, nil
}

func (c *fakeCatalog) Providers(context.Context, content.ModelID) []peer.ID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]peer.ID(nil), c.providers...)
}

func (c *fakeCatalog) ProvidersStream(ctx context.Context, id content.ModelID) <-chan peer.ID {
	ps := c.Providers(ctx, id)
	ch := make(chan peer.ID, len(ps))
	for _, p := range ps {
		ch <- p
	}
	c.mu.Lock()
	later := c.later
	c.mu.Unlock()
	if later == nil {
		close(ch)
		return ch
	}
	go func() {
		defer close(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case p, ok := <-later:
				if !ok {
					return
				}
				select {
				case ch <- p:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch
}

func (c *fakeCatalog) Provide(ids ...content.ModelID) {
	c.mu.Lock()
	c.provided = append(c.provided, ids...)
	c.mu.Unlock()
}

// fakeAnchoring answers every check with a fixed state.
type fakeAnchoring struct {
	required bool
	state    string
	err      error
	checks   int
}

func (a *fakeAnchoring) Required() bool { return a.required }

func (a *fakeAnchoring) Check(context.Context, content.ModelID, []byte) (string, error) {
	a.checks++
	return a.state, a.err
}

func (a *fakeAnchoring) WaitVerified(context.Context, content.ModelID, []byte, time.Duration) error {
	if a.state == "verified" {
		return nil
	}
	return fmt.Errorf("anchor is %s: %v", a.state, a.err)
}

// fakeKeys is a keyring over a map.
type fakeKeys struct {
	mu   sync.Mutex
	keys map[content.ModelID]content.Key
}

func (k *fakeKeys) Get(id content.ModelID) (content.Key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.keys[id]; ok {
		return key, nil
	}
	return content.Key{}, errors.New("no key")
}

func (k *fakeKeys) put(id content.ModelID, key content.Key) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[content.ModelID]content.Key{}
	}
	k.keys[id] = key
}

// fixture is one node's worth of what the fetch service uses: a store, a chunk store and a jobs
// manager in temp folders, fakes for the rest.
type fixture struct {
	datadir string
	st      *store.Store
	chunks  *ChunkStore
	jobs    *jobs.Manager
	catalog *fakeCatalog
	anchors *fakeAnchoring
	keys    *fakeKeys
	svc     *Service
}

// newFixture builds a fetch service on h (nil: no host), not started.
func newFixture(t *testing.T, h host.Host) *fixture {
	t.Helper()
	f := &fixture{datadir: t.TempDir(), catalog: newFakeCatalog(), anchors: &fakeAnchoring{state: "off"}, keys: &fakeKeys{}}
	var err error
	if f.st, err = store.Open(f.datadir+"/store", store.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.st.Close() })
	bd, err := blob.OpenDir(f.datadir + "/blobs")
	if err != nil {
		t.Fatal(err)
	}
	f.chunks = NewChunkStore(f.st, bd)
	t.Cleanup(func() { f.chunks.Close() })
	f.jobs = jobs.NewManager(f.st, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { f.jobs.Close() }) // before the chunk store closes (cleanups run last first)
	f.svc = New(Config{Datadir: f.datadir, ProviderWait: 5 * time.Second}, Deps{
		Store: f.st, Host: h, Chunks: f.chunks, Catalog: f.catalog, Anchoring: f.anchors, Keys: f.keys, Jobs: f.jobs,
	})
	t.Cleanup(func() { f.svc.Close() })
	return f
}

// publish packages plain as a model into f's chunk store (as the publisher does), adds it to f's
// catalog and returns its record and key; withKey also puts the key in f's keyring.
func (f *fixture) publish(t *testing.T, plain []byte, name string, withKey bool) (*catalog.Record, content.Key) {
	t.Helper()
	signer, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := content.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	salt := make([]byte, content.SaltSize)
	rand.Read(salt)
	size, chunkSize := uint64(len(plain)), uint64(content.MinChunkSize)
	var tmpID [32]byte
	rand.Read(tmpID[:])
	bf, err := f.chunks.Blobs().Open(tmpID, blob.Layout{Size: size, ChunkSize: chunkSize, Chunks: content.ChunkCount(size, chunkSize)})
	if err != nil {
		t.Fatal(err)
	}
	packed, err := content.Package(t.Context(), bytes.NewReader(plain), size, chunkSize, key, salt, 2, bf.WriteChunk)
	if err == nil {
		err = bf.Sync()
	}
	bf.Close()
	if err != nil {
		t.Fatal(err)
	}
	kc := key.Commitment()
	man := &content.Manifest{
		Name: name, Size: size, ChunkSize: chunkSize, Chunks: packed.Chunks, Root: packed.Root[:],
		KeyCommitment: kc[:], Salt: salt, Price: "1", Payee: content.Account{Owner: "aaaaa-aa"}, CreatedAt: time.Now().UnixMilli(),
	}
	signed, id, err := content.Sign(man, signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.chunks.Blobs().Rename(tmpID, id); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Update(func(tx *store.Tx) error { return f.chunks.PutComplete(tx, id, packed.Leaves, packed.Chunks) }); err != nil {
		t.Fatal(err)
	}
	rec := &catalog.Record{ID: id, Manifest: man, Signed: signed, Source: "published"}
	rec.Root = rec
	f.catalog.add(rec)
	if withKey {
		f.keys.put(id, key)
	}
	return rec, key
}

// randomModel returns n random bytes.
func randomModel(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
