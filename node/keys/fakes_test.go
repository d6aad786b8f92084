package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/internal/limit"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
)

// fakeLedgerSvc is a hand-written Ledger (node/ledger's Service): a fixed client (or a connection
// error), a configured canister, and a per-peer verification budget of perMinute a minute.
type fakeLedgerSvc struct {
	c        ledger.Ledger
	err      error
	canister string

	mu  sync.Mutex
	lim *limit.PerPeer
}

var _ Ledger = (*fakeLedgerSvc)(nil)

func newFakeLedgerSvc(c ledger.Ledger, perMinute int) *fakeLedgerSvc {
	s := &fakeLedgerSvc{c: c}
	if c != nil {
		s.canister = c.Ledger().Encode()
	}
	s.setBudget(perMinute)
	return s
}

// setBudget gives every peer a fresh budget of perMinute verifications a minute.
func (s *fakeLedgerSvc) setBudget(perMinute int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim = limit.New(perMinute, time.Minute/time.Duration(perMinute), 10_000)
}

func (s *fakeLedgerSvc) Client() (ledger.Ledger, error) {
	if s.err != nil {
		return nil, s.err
	}
	return s.c, nil
}

func (s *fakeLedgerSvc) AllowVerify(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lim.Allow(p)
}

func (s *fakeLedgerSvc) CanisterID() string { return s.canister }

// fakeAnchoring is a hand-written Anchoring: the policy, and the state Check answers for each
// model (missing when unset), or err for every model (an unreachable merod).
type fakeAnchoring struct {
	required bool
	mu       sync.Mutex
	state    map[content.ModelID]string
	err      error
	checks   int
}

var _ Anchoring = (*fakeAnchoring)(nil)

func newFakeAnchoring(required bool) *fakeAnchoring {
	return &fakeAnchoring{required: required, state: map[content.ModelID]string{}}
}

func (a *fakeAnchoring) Required() bool { return a.required }

func (a *fakeAnchoring) Check(ctx context.Context, id content.ModelID, signed []byte) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks++
	if a.err != nil {
		return "", a.err
	}
	st, ok := a.state[id]
	if !ok {
		return "missing", nil
	}
	if st == "invalid" {
		return st, fmt.Errorf("anchor of %x is invalid", id[:4])
	}
	return st, nil
}

// fakeCatalog is a hand-written Catalog: records in memory, admitted as node/catalog admits them
// (the manifest verifies; a child's parent is known, it claims its parent's root as its lineage
// and is signed by the root's publisher or a coordinator the root names; at most maxPerPublisher
// entries per publisher).
type fakeCatalog struct {
	maxPerPublisher int

	mu           sync.Mutex
	recs         map[content.ModelID]*catalog.Record
	perPublisher map[peer.ID]int
}

var _ Catalog = (*fakeCatalog)(nil)

func newFakeCatalog() *fakeCatalog {
	return &fakeCatalog{maxPerPublisher: 1024, recs: map[content.ModelID]*catalog.Record{}, perPublisher: map[peer.ID]int{}}
}

// put stores r as is (a record the node already holds).
func (f *fakeCatalog) put(r *catalog.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs[r.ID] = r
}

func (f *fakeCatalog) has(id content.ModelID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.recs[id]
	return ok
}

func (f *fakeCatalog) Get(id content.ModelID) (*catalog.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.recs[id]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("model %x: %w", id[:6], store.ErrNotFound)
}

func (f *fakeCatalog) All() ([]*catalog.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*catalog.Record
	for _, r := range f.recs {
		out = append(out, r)
	}
	return out, nil
}

func (f *fakeCatalog) Add(signed []byte, source string) (*catalog.Record, bool, error) {
	if known, err := f.Get(sha256.Sum256(signed)); err == nil {
		return known, false, nil
	}
	man, id, err := content.Open(signed)
	if err != nil {
		return nil, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := &catalog.Record{ID: id, Manifest: man, Signed: signed, Source: source}
	r.Root = r
	if !man.IsRoot() {
		parent, ok := f.recs[content.ModelID(man.Parent)]
		if !ok {
			return nil, false, fmt.Errorf("model %x: %w (parent %x)", id[:6], errUnknownParent, man.Parent[:6])
		}
		root := parent.RootRecord()
		if !bytes.Equal(man.Lineage, root.ID[:]) {
			return nil, false, fmt.Errorf("model %x: %w: it claims lineage %x, its parent's is %x", id[:6], errLineage, man.Lineage[:6], root.ID[:6])
		}
		s, err := man.PublisherID()
		if err != nil || !root.Manifest.Authorises(s) {
			return nil, false, fmt.Errorf("model %x: %w: its signer %s is neither the publisher of lineage %x nor a coordinator it names", id[:6], errLineage, s, root.ID[:6])
		}
		r.Root = root
	}
	pub, _ := man.PublisherID()
	if f.perPublisher[pub] >= f.maxPerPublisher {
		return nil, false, fmt.Errorf("model %x: %w (%d)", id[:6], errQuota, f.maxPerPublisher)
	}
	f.perPublisher[pub]++
	f.recs[id] = r
	return r, true, nil
}

// fakeDirectory is a hand-written Directory: a fixed list of coordinators.
type fakeDirectory []peer.ID

func (d fakeDirectory) Coordinators() []peer.ID { return d }

// manifestBy signs a lineage root for key k with priv, naming coords as its coordinators.
func manifestBy(t *testing.T, priv crypto.PrivKey, k content.Key, coords ...peer.ID) []byte {
	t.Helper()
	kc := k.Commitment()
	m := &content.Manifest{Name: "m", Size: 1, ChunkSize: content.MinChunkSize, Chunks: 1, Root: make([]byte, 32),
		KeyCommitment: kc[:], Salt: make([]byte, content.SaltSize), Price: "1", Payee: content.Account{Owner: "aaaaa-aa"}, CreatedAt: time.Now().UnixMilli()}
	for _, c := range coords {
		m.Coordinators = append(m.Coordinators, []byte(c))
	}
	signed, _, err := content.Sign(m, priv)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// recordOf opens a signed lineage root as a catalog record (its own root).
func recordOf(t *testing.T, signed []byte) *catalog.Record {
	t.Helper()
	man, id, err := content.Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	r := &catalog.Record{ID: id, Manifest: man, Signed: signed}
	r.Root = r
	return r
}

// newStore opens an in-memory store closed at the end of the test.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newKeyringOn returns a keyring over st under a fresh master key.
func newKeyringOn(t *testing.T, st *store.Store) *Keyring {
	t.Helper()
	master := make([]byte, 32)
	rand.Read(master)
	kr, err := NewKeyring(master, st)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// mesh is a connected mocknet whose hosts have the signers' identities.
func mesh(t *testing.T, ss ...contenttest.Signer) []host.Host {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	var hs []host.Host
	for i, s := range ss {
		h, err := mn.AddPeer(s.Priv, ma.StringCast(fmt.Sprintf("/ip4/10.0.0.%d/tcp/4001", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	return hs
}

// testCoordinator is a started Coordinator on host h with its own store, keyring and catalog,
// verifying payments on l.
type testCoordinator struct {
	*Coordinator
	id      peer.ID
	st      *store.Store
	keys    *Keyring
	catalog *fakeCatalog
	ledger  *fakeLedgerSvc
}

func startCoordinator(t *testing.T, h host.Host, l ledger.Ledger) *testCoordinator {
	t.Helper()
	st := newStore(t)
	kr := newKeyringOn(t, st)
	cat := newFakeCatalog()
	ls := newFakeLedgerSvc(l, 10)
	srv := kex.NewServer(t.Context(), h, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { srv.Close() })
	c := NewCoordinator(Config{Self: h.ID()}, Deps{Store: st, Keys: kr, Kex: srv, Catalog: cat, Ledger: ls})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &testCoordinator{Coordinator: c, id: h.ID(), st: st, keys: kr, catalog: cat, ledger: ls}
}

// hold stores r in the coordinator's catalog and k in its keyring (an escrowed model).
func (c *testCoordinator) hold(t *testing.T, r *catalog.Record, k content.Key) {
	t.Helper()
	c.catalog.put(r)
	if err := c.st.Update(func(tx *store.Tx) error { return c.keys.Put(tx, r.ID, k) }); err != nil {
		t.Fatal(err)
	}
}

// SetCoordinators admits a coordinator update of a root in the fake catalog as node/catalog
// does (signed by the root's publisher, highest seq wins).
func (f *fakeCatalog) SetCoordinators(signed []byte) (*content.CoordinatorUpdate, bool, error) {
	lineage, err := content.CoordinatorUpdateLineage(signed)
	if err != nil {
		return nil, false, err
	}
	f.mu.Lock()
	root, ok := f.recs[lineage]
	if ok && root.Coordination == nil {
		root.Coordination = catalog.NewCoordination()
	}
	f.mu.Unlock()
	if !ok || !root.Manifest.IsRoot() {
		return nil, false, fmt.Errorf("lineage %x: %w", lineage[:6], catalog.ErrUnknownLineage)
	}
	u, err := content.OpenCoordinatorUpdate(signed, root.ID, root.Manifest)
	if err != nil {
		return nil, false, err
	}
	changed, err := root.Coordination.Apply(u, signed, nil)
	return u, changed, err
}
