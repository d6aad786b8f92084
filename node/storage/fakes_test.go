package storage

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
)

// fakeCatalog is a catalog of hand-made records (their manifests are not signed).
type fakeCatalog struct {
	mu        sync.Mutex
	recs      []*catalog.Record
	forgotten []content.ModelID
}

func (c *fakeCatalog) All() ([]*catalog.Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*catalog.Record(nil), c.recs...), nil
}

func (c *fakeCatalog) Get(id content.ModelID) (*catalog.Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.recs {
		if r.ID == id {
			return r, nil
		}
	}
	return nil, store.ErrNotFound
}

func (c *fakeCatalog) Forget(id content.ModelID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range c.recs {
		if bytes.Equal(r.Manifest.Parent, id[:]) {
			return catalog.ErrHasChildren
		}
		if r.ID == id {
			defer func() { c.recs = append(c.recs[:i], c.recs[i+1:]...) }()
		}
	}
	c.forgotten = append(c.forgotten, id)
	return nil
}

// fakeChunks holds chunk counts and blob sizes per model.
type fakeChunks struct {
	mu      sync.Mutex
	held    map[content.ModelID]uint64
	size    map[content.ModelID]uint64
	removed []content.ModelID
}

func (c *fakeChunks) Held(id [32]byte, _ uint64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held[id]
}

func (c *fakeChunks) DiskBytes(id [32]byte) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size[id]
}

func (c *fakeChunks) Usage() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n uint64
	for _, b := range c.size {
		n += b
	}
	return n, nil
}

func (c *fakeChunks) Remove(id [32]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.held, id)
	delete(c.size, id)
	c.removed = append(c.removed, id)
	return nil
}

func (c *fakeChunks) wasRemoved() []content.ModelID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]content.ModelID(nil), c.removed...)
}

type fakeJobs map[string]string // fetch subject (hex model ID) → job ID

func (j fakeJobs) Running(kind, subject string) (string, bool) {
	id, ok := j[subject]
	return id, ok && kind == "fetch"
}

type fakeRounds []content.ModelID

func (r fakeRounds) OpenBases() []content.ModelID { return r }

type fakeProvider struct {
	mu      sync.Mutex
	stopped []multihash.Multihash
}

func (p *fakeProvider) StopProviding(keys ...multihash.Multihash) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = append(p.stopped, keys...)
	return nil
}

func (p *fakeProvider) stoppedFor(id content.ModelID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := catalog.ModelCID(id).Hash()
	for _, k := range p.stopped {
		if bytes.Equal(k, want) {
			return true
		}
	}
	return false
}

type fakeKeys map[content.ModelID]bool

func (k fakeKeys) Has(id content.ModelID) bool { return k[id] }

// fixture is a storage service over fakes and a real store; self is this node's peer ID and
// other another publisher's.
type fixture struct {
	t        *testing.T
	self     peer.ID
	other    peer.ID
	st       *store.Store
	catalog  *fakeCatalog
	chunks   *fakeChunks
	jobs     fakeJobs
	rounds   fakeRounds
	provider *fakeProvider
	keys     fakeKeys
	created  time.Time
	log      bytes.Buffer
	logMu    sync.Mutex
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &fixture{
		t: t, self: contenttest.NewSigner(t).ID, other: contenttest.NewSigner(t).ID, st: st,
		catalog: &fakeCatalog{}, chunks: &fakeChunks{held: map[content.ModelID]uint64{}, size: map[content.ModelID]uint64{}},
		jobs: fakeJobs{}, provider: &fakeProvider{}, keys: fakeKeys{}, created: time.Unix(1_700_000_000, 0),
	}
}

// Write collects the service's log (io.Writer for slog).
func (f *fixture) Write(p []byte) (int, error) {
	f.logMu.Lock()
	defer f.logMu.Unlock()
	return f.log.Write(p)
}

func (f *fixture) logs() string {
	f.logMu.Lock()
	defer f.logMu.Unlock()
	return f.log.String()
}

// service builds the storage service with the cap given.
func (f *fixture) service(maxBytes uint64) *Service {
	f.t.Helper()
	s, err := New(Config{Self: f.self, MaxBlobBytes: maxBytes, CheckEvery: time.Hour, Log: slog.New(slog.NewTextHandler(f, nil))},
		Deps{Store: f.st, Catalog: f.catalog, Chunks: f.chunks, Jobs: f.jobs, Rounds: &f.rounds, Provider: f.provider, Keys: f.keys})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { s.Close() })
	return s
}

// holding says how much of a model is held.
type holding int

const (
	none holding = iota
	partial
	complete
)

// version adds a 4-chunk model of 400 bytes to the catalog, a child of parent (nil: a root),
// published by pub, created after every earlier one, held as h.
func (f *fixture) version(name string, parent *catalog.Record, pub peer.ID, h holding) *catalog.Record {
	f.created = f.created.Add(time.Minute)
	man := &content.Manifest{Name: name, Chunks: 4, Size: 400, Publisher: []byte(pub), CreatedAt: f.created.UnixMilli()}
	if parent != nil {
		man.Parent = parent.ID[:]
	}
	r := &catalog.Record{Manifest: man, Source: "gossip"}
	copy(r.ID[:], name)
	r.ID[31] = byte(len(f.catalog.recs))
	if pub == f.self {
		r.Source = "published"
	}
	f.catalog.mu.Lock()
	f.catalog.recs = append(f.catalog.recs, r)
	f.catalog.mu.Unlock()
	f.hold(r, h)
	return r
}

func (f *fixture) hold(r *catalog.Record, h holding) {
	f.chunks.mu.Lock()
	defer f.chunks.mu.Unlock()
	switch h {
	case partial:
		f.chunks.held[r.ID], f.chunks.size[r.ID] = 2, 200
	case complete:
		f.chunks.held[r.ID], f.chunks.size[r.ID] = 4, 400
	}
}
