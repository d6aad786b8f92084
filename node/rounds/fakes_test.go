package rounds

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/fetch"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The fakes stand for the services the rounds service uses; they share one fakeNode's state, so
// what the fake publisher publishes is in the fake catalog and decrypts through the fake models.

// fakeCatalog is a map of verified records.
type fakeCatalog struct {
	mu     sync.Mutex
	recs   map[content.ModelID]*catalog.Record
	remote *fakeCatalog // the catalog Resolve finds what this one lacks in (nil: nobody's)
}

func (c *fakeCatalog) Get(id content.ModelID) (*catalog.Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.recs[id]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("model %x: %w", id[:8], store.ErrNotFound)
}

// Resolve is Get, then remote's Get (the record is then added to c).
func (c *fakeCatalog) Resolve(_ context.Context, id content.ModelID) (*catalog.Record, error) {
	if r, err := c.Get(id); err == nil {
		return r, nil
	}
	if c.remote != nil {
		if r, err := c.remote.Get(id); err == nil {
			c.put(r)
			return r, nil
		}
	}
	return nil, apierr.Errorf(apierr.NotFound, "no peer on the network knows model %s: asked 0 peers and the DHT", hex.EncodeToString(id[:]))
}

func (c *fakeCatalog) put(r *catalog.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs[r.ID] = r
}

func (c *fakeCatalog) all() []*catalog.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*catalog.Record
	for _, r := range c.recs {
		out = append(out, r)
	}
	return out
}

// addSigned adds a signed manifest received from elsewhere; a version's root is its parent's.
func (c *fakeCatalog) addSigned(t *testing.T, signed []byte) *catalog.Record {
	t.Helper()
	m, id, err := content.Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	r := &catalog.Record{ID: id, Manifest: m, Signed: signed, Source: "test"}
	r.Root = r
	if !m.IsRoot() {
		parent, err := c.Get(content.ModelID(m.Parent))
		if err != nil {
			t.Fatal(err)
		}
		r.Root = parent.RootRecord()
	}
	c.put(r)
	return r
}

// fakeModels holds the plaintext of every complete, unlocked model: all it holds is complete,
// and it holds a model's key when it holds its plaintext (it is also the Keyring).
type fakeModels struct {
	mu       sync.Mutex
	plain    map[content.ModelID][]byte
	held     map[content.ModelID]bool // plaintexts standing for keys held in memory
	released int
}

func (m *fakeModels) Complete(*catalog.Record) bool                      { return true }
func (m *fakeModels) WaitFetched(context.Context, *catalog.Record) error { return nil }

func (m *fakeModels) Plaintext(id content.ModelID) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.plain[id]
	if !ok {
		return nil, fetch.ErrNotUnlocked
	}
	return append([]byte(nil), b...), nil // callers clear what they get
}

func (m *fakeModels) Has(id content.ModelID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.plain[id]
	return ok
}

// Release forgets a held key: the fake holds keys as plaintexts, so it drops the plaintext of
// a version put with hold (and counts the release).
func (m *fakeModels) Release(id content.ModelID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held[id] {
		delete(m.plain, id)
		delete(m.held, id)
		m.released++
	}
}

// hold puts a plaintext as a key held in memory (Release drops it).
func (m *fakeModels) hold(id content.ModelID, plain []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.plain[id] = append([]byte(nil), plain...)
	if m.held == nil {
		m.held = map[content.ModelID]bool{}
	}
	m.held[id] = true
}

func (m *fakeModels) put(id content.ModelID, plain []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.plain[id] = append([]byte(nil), plain...)
}

// fakePublisher signs versions with the node's key, as the real publisher does, and records
// what it was asked to publish.
type fakePublisher struct {
	n *fakeNode

	mu    sync.Mutex
	calls []publishCall
}

type publishCall struct {
	Path, Name, Description string
	Parent                  content.ModelID
}

func (p *fakePublisher) PublishVersion(ctx context.Context, path, name, description string, parent content.ModelID) (*catalog.Record, error) {
	p.mu.Lock()
	p.calls = append(p.calls, publishCall{path, name, description, parent})
	p.mu.Unlock()
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	prec, err := p.n.catalog.Get(parent)
	if err != nil {
		return nil, fmt.Errorf("parent model: %w", err)
	}
	lineage := prec.Lineage()
	m := contenttest.Manifest(versionFor(name, raw))
	m.Description = description
	m.Parent, m.Lineage = parent[:], lineage[:]
	signed, id, err := content.Sign(m, p.n.key)
	if err != nil {
		return nil, err
	}
	rec := &catalog.Record{ID: id, Manifest: m, Signed: signed, Source: "published", Root: prec.RootRecord()}
	p.n.catalog.put(rec)
	p.n.models.put(id, raw)
	return rec, nil
}

func (p *fakePublisher) published() []publishCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]publishCall(nil), p.calls...)
}

// fakeKeys is the trainer's key client: it is never entitled to a key it does not hold. As a
// coordinator's, HoldForRound runs onHold (nil: refused, no shares).
type fakeKeys struct {
	mu     sync.Mutex
	claims [][]peer.ID
	onHold func(r *catalog.Record) error
}

func (k *fakeKeys) HoldForRound(ctx context.Context, r *catalog.Record, coords []peer.ID) error {
	k.mu.Lock()
	fn := k.onHold
	k.mu.Unlock()
	if fn == nil {
		return apierr.Errorf(apierr.Unavailable, "only 1 of the 3 coordinators holding shares answered and 2 are needed")
	}
	return fn(r)
}

func (k *fakeKeys) Claim(ctx context.Context, r *catalog.Record, coords []peer.ID) error {
	k.mu.Lock()
	k.claims = append(k.claims, coords)
	k.mu.Unlock()
	return apierr.Errorf(apierr.NotUnlocked, "not entitled")
}

// fakeGrants is the set of (lineage, trainer) that paid.
type fakeGrants struct {
	mu  sync.Mutex
	set map[string]bool
}

func (g *fakeGrants) Entitled(r *catalog.Record, trainer peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := r.Lineage()
	return g.set[fmt.Sprintf("%x/%s", l[:], trainer)] || r.PublishedBy(trainer)
}

func (g *fakeGrants) grant(lineage content.ModelID, trainer peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.set[fmt.Sprintf("%x/%s", lineage[:], trainer)] = true
}

// fakeAnchoring is anchoring turned off.
type fakeAnchoring struct{}

func (fakeAnchoring) On() bool                                            { return false }
func (fakeAnchoring) Known(content.ModelID) string                        { return "" }
func (fakeAnchoring) Commit(context.Context, *calimero.Commitment) string { return "" }
func (fakeAnchoring) RoundCommitments(context.Context, [32]byte, string) ([]*calimero.Commitment, error) {
	return nil, nil
}
func (fakeAnchoring) JoinTraining(context.Context, [32]byte) error { return nil }

// fakeDirectory knows the coordinators it is given (none by default).
type fakeDirectory struct{ coords []peer.ID }

func (d *fakeDirectory) Coordinators() []peer.ID { return d.coords }

// fakeNode is a rounds service over a temp store and the fakes, not started (no network).
type fakeNode struct {
	s         *Service
	key       crypto.PrivKey
	self      peer.ID
	st        *store.Store
	catalog   *fakeCatalog
	models    *fakeModels
	publisher *fakePublisher
	keys      *fakeKeys
	grants    *fakeGrants
	directory *fakeDirectory
	dir       string // the datadir: rounds/, updates/, train/
}

// newNode builds a rounds service with roles (config.RoleCoordinator, config.RoleTrainer).
func newNode(t *testing.T, roles ...string) *fakeNode {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newNodeWithKey(t, priv, roles...)
}

// newNodeWithKey is newNode for the identity priv (a host's, for tests over a network).
func newNodeWithKey(t *testing.T, priv crypto.PrivKey, roles ...string) *fakeNode {
	t.Helper()
	self, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{
		key: priv, self: self, st: st, dir: t.TempDir(),
		catalog:   &fakeCatalog{recs: map[content.ModelID]*catalog.Record{}},
		models:    &fakeModels{plain: map[content.ModelID][]byte{}},
		keys:      &fakeKeys{},
		grants:    &fakeGrants{set: map[string]bool{}},
		directory: &fakeDirectory{},
	}
	n.publisher = &fakePublisher{n: n}
	cfg := Config{
		Self: self, Train: config.Default().Train,
		RoundsDir: filepath.Join(n.dir, RoundsDir), UpdatesDir: filepath.Join(n.dir, UpdatesDir), TrainDir: filepath.Join(n.dir, TrainDir),
	}
	for _, r := range roles {
		switch r {
		case config.RoleCoordinator:
			cfg.IsCoordinator = true
		case config.RoleTrainer:
			cfg.IsTrainer = true
		}
	}
	n.s, err = New(cfg, Deps{
		Store: st, Catalog: n.catalog, Models: n.models, Publisher: n.publisher, Keyring: n.models,
		Keys: n.keys, Grants: n.grants, Anchoring: fakeAnchoring{}, Directory: n.directory,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.s.Close()
		st.Close()
	})
	return n
}

// versionFor describes a model named name whose plaintext is raw, under a fresh key, priced 1 and
// naming coords (its chunk root is the plaintext's hash: nothing here reads chunks).
func versionFor(name string, raw []byte, coords ...peer.ID) contenttest.Version {
	k, _ := content.NewKey()
	return contenttest.Version{Name: name, Price: "1", Key: k, Coords: coords, Plaintext: raw}
}

// publishRoot publishes raw as a new lineage root signed by this node, naming coords (this node
// when none are given, as a coordinator's publish does by default), and holds its plaintext.
func (n *fakeNode) publishRoot(t *testing.T, name string, raw []byte, coords ...peer.ID) *catalog.Record {
	t.Helper()
	if coords == nil {
		coords = []peer.ID{n.self}
	}
	signed, _, err := content.Sign(contenttest.Manifest(versionFor(name, raw, coords...)), n.key)
	if err != nil {
		t.Fatal(err)
	}
	rec := n.catalog.addSigned(t, signed)
	n.models.put(rec.ID, raw)
	return rec
}
