package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/catalog"
	"github.com/califusion/califusion/protocols/chunks"
	"github.com/califusion/califusion/store"
	"github.com/califusion/califusion/store/blob"
	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
)

// BlobDir is the datadir folder of model ciphertext.
const BlobDir = "blobs"

// models is the node's model service: the catalog, publishing, serving and fetching chunks, and
// export.
type models struct {
	n       *Node
	log     *slog.Logger
	chunks  *chunkStore
	keys    *keyring
	fetcher *chunks.Fetcher
	topic   *pubsub.Topic
	index   *catalogIndex // the catalog by time added, for catalog sync answers

	bg *tasks // background work (catalog syncs); shutdown waits for it

	verified sync.Map // content.ModelID → *record whose manifest verified

	provideMu      sync.Mutex
	providePending []multihash.Multihash // keys waiting for provideLoop
	provideKick    chan struct{}

	announceLimit *peerLimiter // model announcements per author
	depositLimit  *peerLimiter // key deposits per peer (coordinator)

	escrowMu sync.Mutex
	escrowed map[peer.ID]int // lineage roots per publisher whose key this coordinator holds; nil until first used

	quotaMu      sync.Mutex
	perPublisher map[peer.ID]int // catalog entries stored per publisher (signer)

	mu        sync.Mutex
	announced map[content.ModelID]map[peer.ID]bool // peers that announced each model
	synced    map[peer.ID]time.Time                // each peer's clock at its last catalog read: the next asks since then
	syncing   map[peer.ID]bool
}

func (n *Node) startModels(context.Context) error {
	bd, err := blob.OpenDir(n.dir.Join(BlobDir))
	if err != nil {
		return err
	}
	master, err := loadMasterKey(n.dir)
	if err != nil {
		return err
	}
	kr, err := newKeyring(master, n.store)
	clear(master)
	if err != nil {
		return err
	}
	m := &models{
		n: n, log: n.log.With("subsys", "models"), chunks: newChunkStore(n.store, bd), keys: kr,
		announced: map[content.ModelID]map[peer.ID]bool{}, synced: map[peer.ID]time.Time{}, syncing: map[peer.ID]bool{},
		provideKick:   make(chan struct{}, 1),
		announceLimit: newPeerLimiter(announceBurst, announceEvery, limiterPeers),
		depositLimit:  newPeerLimiter(depositBurst, depositEvery, limiterPeers),
	}
	m.fetcher = chunks.NewFetcher(n.host, chunks.Config{
		Window: n.cfg.Transfer.Window, PerPeer: n.cfg.Transfer.PerPeer, StallTimeout: n.cfg.Transfer.StallTimeout.Duration,
	}, m.log)
	n.models = m
	n.onStop(m.chunks.close)
	m.bg = newTasks(n.ctx)
	n.onStop(m.bg.stop)

	if m.index, err = loadCatalogIndex(m); err != nil {
		return err
	}
	n.onStop(chunks.NewServer(n.host, m, chunkServing(n.cfg.P2P), m.log).Close)
	// Catalog streams are rate-limited per peer; one over its rate is reset before it is read.
	catalogLimit := newPeerLimiter(catalog.RequestBurst, catalog.RequestEvery, limiterPeers)
	n.onStop(catalog.NewServer(n.host, m.index, catalog.ServerConfig{Allow: catalogLimit.allow}, m.log).Close)

	topic, sub, err := n.joinTopic(announce.ModelsTopic, m.log, func(from peer.ID, b []byte) (any, error) {
		// Rate-limited per author before anything is parsed: a rejected message scores its
		// sender down in gossipsub.
		if from != n.host.ID() && !m.announceLimit.allow(from) {
			return nil, errAnnounceRate
		}
		var opened *record
		_, err := announce.DecodeModelAnnounce(b, func(signed []byte) error {
			man, id, err := content.Open(signed)
			opened = &record{ID: id, Manifest: man, Signed: signed}
			return err
		})
		return opened, err
	})
	if err != nil {
		return err
	}
	m.topic = topic
	n.spawn(func(ctx context.Context) { m.receiveAnnouncements(ctx, sub) })
	n.spawn(m.syncCatalogs)
	n.spawn(m.fillFromAnchors)
	n.spawn(m.provideLoop)
	n.spawn(m.provideAll)
	return nil
}

// record is a catalog entry with its decoded manifest and its derived lineage root.
type record struct {
	ID       content.ModelID
	Manifest *content.Manifest
	Signed   []byte
	Source   string
	// Root is the first version of the lineage, derived from verified parents (r itself for a
	// root), never read from the manifest's Lineage field. Every lineage decision (grants,
	// payment memo, price, payee, who may sign versions and run rounds) uses it.
	Root *record
}

// root returns r's derived root; a record built without one (never by the catalog) counts as its
// own root, which can claim nobody else's lineage.
func (r *record) root() *record {
	if r.Root == nil {
		return r
	}
	return r.Root
}

// Lineage returns the ModelID a payment for r binds to: its derived root's.
func (r *record) Lineage() content.ModelID { return r.root().ID }

// Price returns what r's lineage costs: its root's price, whatever r's manifest says.
func (r *record) Price() *big.Int { return r.root().Manifest.PriceInt() }

// Payee returns the account r's lineage is paid to: its root's payee.
func (r *record) Payee() content.Account { return r.root().Manifest.Payee }

// authorises reports whether r's lineage root lets p sign versions and run rounds.
func (r *record) authorises(p peer.ID) bool { return r.root().Manifest.Authorises(p) }

// Limits on what peers may make a node store or verify.
var (
	// maxCatalogPerPublisher caps the catalog entries a node stores per publisher (this node's
	// own are exempt); beyond it manifests are refused, never stored.
	maxCatalogPerPublisher = 1024
	// announceBurst and announceEvery bound the model announcements one author may gossip.
	announceBurst = 32
	announceEvery = time.Second
	// catalogSyncMax bounds the manifests admitted from one peer in one catalog sync.
	catalogSyncMax = 512
)

// limiterPeers is how many peers a per-peer rate limiter tracks.
const limiterPeers = 4096

// Refusals of catalog admission.
var (
	errUnknownParent = errors.New("its parent is not in this node's catalog")
	errLineage       = errors.New("its lineage does not verify")
	errCatalogQuota  = errors.New("its publisher has too many models in this node's catalog")
	errAnnounceRate  = errors.New("the author announces models faster than allowed")
)

// deriveRoot returns the lineage root of a verified manifest: nil for a root (it is its own).
// A child is admitted only if its parent is in the catalog and verified (so the parent's root
// is derived too), it claims exactly that root as its Lineage, and it is signed by the root's
// publisher or by a coordinator the root names.
func (m *models) deriveRoot(id content.ModelID, man *content.Manifest) (*record, error) {
	if man.IsRoot() {
		return nil, nil
	}
	pid := content.ModelID(man.Parent)
	parent, err := m.get(pid)
	if err != nil {
		return nil, fmt.Errorf("model %x: %w (parent %x)", id[:6], errUnknownParent, pid[:6])
	}
	root := parent.root()
	if !bytes.Equal(man.Lineage, root.ID[:]) {
		return nil, fmt.Errorf("model %x: %w: it claims lineage %x, its parent's is %x", id[:6], errLineage, man.Lineage[:6], root.ID[:6])
	}
	signer, err := man.PublisherID()
	if err != nil || !root.Manifest.Authorises(signer) {
		return nil, fmt.Errorf("model %x: %w: its signer %s is neither the publisher of lineage %x nor a coordinator it names", id[:6], errLineage, signer, root.ID[:6])
	}
	return root, nil
}

// withRoot sets r.Root from its derived lineage.
func (m *models) withRoot(r *record) error {
	root, err := m.deriveRoot(r.ID, r.Manifest)
	if err != nil {
		return err
	}
	if root == nil {
		root = r
	}
	r.Root = root
	return nil
}

// add stores a verified manifest in the catalog if it is new; it reports whether it was.
func (m *models) add(signed []byte, source string) (*record, bool, error) {
	// The ModelID is the hash of the signed bytes, so a manifest already in the catalog needs no
	// second signature check (catalog re-syncs repeat many).
	if known, err := m.get(sha256.Sum256(signed)); err == nil {
		return known, false, nil
	}
	man, id, err := content.Open(signed)
	if err != nil {
		return nil, false, err
	}
	return m.addOpened(&record{ID: id, Manifest: man, Signed: signed}, source)
}

// addOpened stores a manifest that content.Open verified, if it is new and its lineage verifies
// (deriveRoot) and its publisher is within its quota; it reports whether it was added. A
// refusal is logged here, so callers need not.
func (m *models) addOpened(r *record, source string) (*record, bool, error) {
	if known, ok := m.verified.Load(r.ID); ok {
		return known.(*record), false, nil
	}
	id, man, signed := r.ID, r.Manifest, r.Signed
	r = &record{ID: id, Manifest: man, Signed: signed, Source: source}
	if err := m.withRoot(r); err != nil {
		m.log.Info("model refused", "model", hex.EncodeToString(id[:]), "source", source, "err", err)
		return nil, false, err
	}
	pub, err := man.PublisherID()
	if err != nil {
		return nil, false, err
	}
	if !m.reserveQuota(pub) {
		err := fmt.Errorf("model %x: %w (%d)", id[:6], errCatalogQuota, maxCatalogPerPublisher)
		m.log.Info("model refused", "model", hex.EncodeToString(id[:]), "source", source, "publisher", pub, "err", err)
		return nil, false, err
	}
	added, now := false, time.Now().UTC()
	err = m.n.store.Update(func(tx *store.Tx) error {
		has, err := tx.Has(store.ModelKey(id))
		if err != nil || has {
			return err
		}
		added = true
		return tx.Put(store.ModelKey(id), &store.ModelRecord{Manifest: signed, Source: source, Added: now})
	})
	if err != nil || !added {
		m.releaseQuota(pub)
	}
	if err != nil {
		return nil, false, err
	}
	if added {
		m.index.note(id, now)
		m.log.Info("model added to catalog", "model", hex.EncodeToString(id[:]), "name", man.Name, "source", source)
	}
	got, _ := m.verified.LoadOrStore(id, r)
	return got.(*record), added, nil
}

// reserveQuota counts one more catalog entry for pub, unless pub is at its cap (this node is
// never capped).
func (m *models) reserveQuota(pub peer.ID) bool {
	m.quotaMu.Lock()
	defer m.quotaMu.Unlock()
	if pub != m.n.host.ID() && m.perPublisher[pub] >= maxCatalogPerPublisher {
		return false
	}
	m.perPublisher[pub]++
	return true
}

func (m *models) releaseQuota(pub peer.ID) {
	m.quotaMu.Lock()
	m.perPublisher[pub]--
	m.quotaMu.Unlock()
}

// known reports whether model id is in the catalog.
func (m *models) known(id [32]byte) bool {
	if _, ok := m.verified.Load(content.ModelID(id)); ok {
		return true
	}
	has, err := m.n.store.Has(store.ModelKey(id))
	return err == nil && has
}

// get returns a catalog entry. Manifests are immutable and named by their hash, so each is
// verified once when read from the store (signature, and its lineage from its parents) and then
// served from memory. A stored record whose lineage does not verify (a datadir from before
// lineages were checked) is not found; it is checked again on the next get, since its parent
// may arrive later.
func (m *models) get(id content.ModelID) (*record, error) {
	if r, ok := m.verified.Load(id); ok {
		return r.(*record), nil
	}
	var rec store.ModelRecord
	if err := m.n.store.Get(store.ModelKey(id), &rec); err != nil {
		return nil, err
	}
	return m.reverify(id, rec)
}

// reverify checks a stored record as addOpened would have and caches it.
func (m *models) reverify(id content.ModelID, rec store.ModelRecord) (*record, error) {
	man, got, err := content.Open(rec.Manifest)
	if err != nil || got != id {
		return nil, fmt.Errorf("%w: stored manifest of %x fails verification: %v", store.ErrNotFound, id[:6], err)
	}
	r := &record{ID: id, Manifest: man, Signed: rec.Manifest, Source: rec.Source}
	if err := m.withRoot(r); err != nil {
		return nil, fmt.Errorf("%w: stored %v", store.ErrNotFound, err)
	}
	v, _ := m.verified.LoadOrStore(id, r)
	return v.(*record), nil
}

// all lists the catalog.
func (m *models) all() ([]*record, error) {
	type pend struct {
		id  content.ModelID
		rec store.ModelRecord
	}
	var out []*record
	var pending []pend // verified after the scan: a lineage check reads parents from the store
	err := m.n.store.Scan(store.ModelPrefix(), func(_ store.Key, decode func(any) error) error {
		var rec store.ModelRecord
		if err := decode(&rec); err != nil {
			return err
		}
		id := content.ModelID(sha256.Sum256(rec.Manifest))
		if r, ok := m.verified.Load(id); ok {
			out = append(out, r.(*record))
			return nil
		}
		pending = append(pending, pend{id, rec})
		return nil
	})
	for _, p := range pending {
		if r, err := m.reverify(p.id, p.rec); err == nil {
			out = append(out, r)
		} // a record that no longer verifies, or whose lineage does not, is skipped
	}
	return out, err
}

func layoutOf(man *content.Manifest) blob.Layout {
	return blob.Layout{Size: man.Size, ChunkSize: man.ChunkSize, Chunks: man.Chunks}
}

// Leaves serves a model's leaf list (chunks.Source).
func (m *models) Leaves(model [32]byte) ([]byte, error) {
	var leaves []byte
	if err := m.n.store.Get(store.LeavesKey(model), &leaves); err != nil {
		return nil, chunks.ErrUnknownModel
	}
	return leaves, nil
}

// ReadChunk serves a chunk this node holds (chunks.Source).
func (m *models) ReadChunk(model [32]byte, i uint64, buf []byte) ([]byte, error) {
	if _, ok := m.chunks.get(model); !ok {
		rec, err := m.get(model)
		if err != nil {
			return nil, chunks.ErrUnknownModel
		}
		// A model's blob is opened only to serve a chunk this node holds: any peer may ask for
		// any model in the catalog.
		if have, err := m.chunks.stored(model, rec.Manifest.Chunks); err != nil || !have.Has(i) {
			return nil, fmt.Errorf("%w: model %x chunk %d", errNoChunk, model[:6], i)
		}
		if _, err := m.chunks.prepare(model, layoutOf(rec.Manifest)); err != nil {
			return nil, err
		}
	}
	return m.chunks.read(model, i, buf)
}

// PublishParams describe a model to publish.
type PublishParams struct {
	Path, Name, Description, Price string
	ChunkSize                      uint64
	Parent                         *content.ModelID // set for aggregated versions
	// Coordinators a new lineage root authorises (nil: the default, see defaultCoordinators);
	// ignored for a version with a Parent, which inherits its root's.
	Coordinators []peer.ID
}

// defaultCoordinators are those a root names when its publisher names none: this node if it is a
// coordinator, else none. Never the coordinators heard of through presence: any peer can claim
// that role, and a named coordinator receives the model's key and runs its rounds.
func (m *models) defaultCoordinators() []peer.ID {
	if m.n.cfg.HasRole(config.RoleCoordinator) {
		return []peer.ID{m.n.host.ID()}
	}
	return nil
}

// publish packages a file, stores it, and announces and provides it.
func (m *models) publish(ctx context.Context, p PublishParams) (*record, error) {
	f, err := os.Open(p.Path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p.Path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory: publish a file", p.Path)
	}
	// A version of a lineage needs its parent verified here and this node authorised by the root.
	var parent *record
	if p.Parent != nil {
		if parent, err = m.get(*p.Parent); err != nil {
			return nil, fmt.Errorf("parent model: %w", err)
		}
		if l := parent.Lineage(); !parent.authorises(m.n.host.ID()) {
			return nil, adminrpc.Errorf(adminrpc.CodeRole, "lineage %x does not name this node as a coordinator: only its publisher or a coordinator it names may publish its versions", l[:8])
		}
	}
	size := uint64(fi.Size())
	chunkSize := p.ChunkSize
	if chunkSize == 0 {
		chunkSize = m.n.cfg.Transfer.ChunkSize
	}
	if err := content.CheckSize(size, chunkSize); err != nil {
		return nil, adminrpc.Errorf(adminrpc.CodeInvalidParams, "cannot publish %s: %v", p.Path, err)
	}
	key, err := content.NewKey()
	if err != nil {
		return nil, err
	}
	defer key.Wipe()
	salt := make([]byte, content.SaltSize)
	rand.Read(salt)

	// Package into a blob under a temporary ID; it is renamed once the ModelID is known.
	var tmpID [32]byte
	rand.Read(tmpID[:])
	layout := blob.Layout{Size: size, ChunkSize: chunkSize, Chunks: content.ChunkCount(size, chunkSize)}
	bf, err := m.chunks.blobs.Open(tmpID, layout)
	if err != nil {
		return nil, err
	}
	packed, err := content.Package(ctx, f, size, chunkSize, key, salt, 2, bf.WriteChunk)
	if err == nil {
		err = bf.Sync()
	}
	bf.Close()
	if err != nil {
		m.chunks.blobs.Remove(tmpID)
		return nil, fmt.Errorf("package %s: %w", p.Path, err)
	}
	principal, err := m.n.ICPPrincipal()
	if err != nil {
		m.chunks.blobs.Remove(tmpID)
		return nil, err
	}
	kc := key.Commitment()
	man := &content.Manifest{
		Name: p.Name, Description: p.Description, Size: size, ChunkSize: chunkSize, Chunks: packed.Chunks,
		Root: packed.Root[:], KeyCommitment: kc[:], Salt: salt, Price: p.Price,
		Payee: content.Account{Owner: principal}, CreatedAt: time.Now().UnixMilli(),
	}
	if parent != nil {
		lineage := parent.Lineage()
		man.Parent, man.Lineage = p.Parent[:], lineage[:]
		// Payments for a lineage go to its root's account at its root's price, whoever publishes
		// a version of it; the manifest repeats them for display only.
		man.Payee, man.Price = parent.Payee(), parent.Price().String()
	} else {
		coords, how := p.Coordinators, "named by the publisher"
		if coords == nil {
			coords, how = m.defaultCoordinators(), "default"
		}
		for _, c := range coords {
			man.Coordinators = append(man.Coordinators, []byte(c))
		}
		if len(coords) == 0 {
			m.log.Warn("the new lineage names no coordinator: no coordinator will hold its key or run its rounds (name them with model publish --coordinator PEER_ID)")
		} else {
			m.log.Info("lineage coordinators", "coordinators", coords, "how", how)
		}
	}
	signed, id, err := content.Sign(man, m.n.key)
	if err != nil {
		m.chunks.blobs.Remove(tmpID)
		return nil, err
	}
	if err := m.chunks.blobs.Rename(tmpID, id); err != nil {
		m.chunks.blobs.Remove(tmpID)
		return nil, err
	}
	have := store.NewBitmap(packed.Chunks)
	for i := uint64(0); i < packed.Chunks; i++ {
		have.Set(i)
	}
	added := time.Now().UTC()
	err = m.n.store.Update(func(tx *store.Tx) error {
		if err := tx.Put(store.ModelKey(id), &store.ModelRecord{Manifest: signed, Source: "published", Added: added}); err != nil {
			return err
		}
		if err := tx.Put(store.LeavesKey(id), content.LeavesToBytes(packed.Leaves)); err != nil {
			return err
		}
		if err := tx.Put(store.HaveKey(id), []byte(have)); err != nil {
			return err
		}
		return m.keys.put(tx, id, key)
	})
	if err != nil {
		m.chunks.blobs.Remove(id)
		return nil, fmt.Errorf("record model: %w", err)
	}
	m.index.note(id, added)
	rec := &record{ID: id, Manifest: man, Signed: signed, Source: "published"}
	if rec.Root = rec; parent != nil {
		rec.Root = parent.root()
	}
	m.verified.Store(id, rec)
	m.quotaMu.Lock()
	m.perPublisher[m.n.host.ID()]++
	m.quotaMu.Unlock()
	if err := m.n.anchoring.put(ctx, signed); err != nil {
		m.log.Warn("anchor model", "model", hex.EncodeToString(id[:]), "err", err)
	}
	if got := m.n.escrow(ctx, rec, key); got == 0 {
		m.log.Warn("no coordinator holds the key yet: trainers cannot unlock this model", "model", hex.EncodeToString(id[:]))
	}
	m.log.Info("model published", "model", hex.EncodeToString(id[:]), "name", man.Name, "size", size, "chunks", packed.Chunks)
	m.announce(ctx, rec)
	m.provide(id)
	return rec, nil
}

// announce publishes a model on the models topic.
func (m *models) announce(ctx context.Context, rec *record) {
	data, err := announce.NewModelAnnounce(rec.Signed).Encode()
	if err != nil {
		m.log.Warn("encode announcement", "err", err)
		return
	}
	if err := m.topic.Publish(ctx, data); err != nil {
		m.log.Warn("announce model", "model", hex.EncodeToString(rec.ID[:]), "err", err)
	}
}

// modelCID is the DHT content ID of a model: a raw CIDv1 over its ModelID as a SHA-256 multihash.
func modelCID(id content.ModelID) cid.Cid {
	mh, _ := multihash.Encode(id[:], multihash.SHA2_256)
	return cid.NewCidV1(cid.Raw, mh)
}

// provide announces in the DHT that this node serves the given models. Keys wait up to
// provideBatch in a queue, so that a burst of publishes reaches the DHT provider together and
// shares its lookups (one per keyspace region instead of one per key).
func (m *models) provide(ids ...content.ModelID) {
	if len(ids) == 0 {
		return
	}
	m.provideMu.Lock()
	for _, id := range ids {
		m.providePending = append(m.providePending, modelCID(id).Hash())
	}
	m.provideMu.Unlock()
	select {
	case m.provideKick <- struct{}{}:
	default:
	}
}

// provideBatch is how long provide keys wait for others to join them.
const provideBatch = 500 * time.Millisecond

// provideLoop hands queued keys to the DHT provider, in batches.
func (m *models) provideLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.provideKick:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(provideBatch):
		}
		m.provideMu.Lock()
		keys := m.providePending
		m.providePending = nil
		m.provideMu.Unlock()
		if err := m.n.provider.StartProviding(false, keys...); err != nil {
			m.log.Debug("provide models", "models", len(keys), "err", err)
		}
	}
}

// provideAll provides every complete model at start (the provider's list of keys lives in
// memory; it reprovides them from then on).
func (m *models) provideAll(context.Context) {
	recs, _ := m.all()
	var ids []content.ModelID
	for _, r := range recs {
		if m.chunks.held(r.ID, r.Manifest.Chunks) == r.Manifest.Chunks { // opens no blob
			ids = append(ids, r.ID)
		}
	}
	m.provide(ids...)
}

// complete reports whether this node holds every chunk of r, opening its blob for the caller to
// read.
func (m *models) complete(r *record) bool {
	if _, err := m.chunks.prepare(r.ID, layoutOf(r.Manifest)); err != nil {
		return false
	}
	return m.chunks.count(r.ID) == r.Manifest.Chunks
}

func (m *models) receiveAnnouncements(ctx context.Context, sub *pubsub.Subscription) {
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		opened, ok := msg.ValidatorData.(*record)
		if !ok {
			continue
		}
		rec, _, err := m.addOpened(opened, "gossip")
		if err != nil {
			continue // refused and logged (a child whose parent is unknown is seen again by catalog sync)
		}
		if from := msg.GetFrom(); from != m.n.host.ID() {
			m.mu.Lock()
			if m.announced[rec.ID] == nil {
				m.announced[rec.ID] = map[peer.ID]bool{}
			}
			m.announced[rec.ID][from] = true
			m.mu.Unlock()
		}
	}
}

// syncCatalogs reads the catalog of every peer this node connects to (a late joiner learns what
// came before it), and every catalogResync what a few connected peers added since the last read
// (a model announced while the gossip mesh was still forming is not missed; a re-read of a peer
// with nothing new costs a listing of IDs).
func (m *models) syncCatalogs(ctx context.Context) {
	sub, err := m.n.host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		m.log.Warn("subscribe to peer events", "err", err)
		return
	}
	defer sub.Close()
	tick := time.NewTicker(catalogResync)
	defer tick.Stop()
	for _, p := range m.n.host.Network().Peers() {
		m.bg.run(func(ctx context.Context) { m.syncCatalog(ctx, p) })
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			peers := m.n.host.Network().Peers()
			mrand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
			for _, p := range peers[:min(len(peers), catalogResyncPeers)] {
				m.bg.run(func(ctx context.Context) { m.syncCatalog(ctx, p) })
			}
		case ev := <-sub.Out():
			p := ev.(event.EvtPeerIdentificationCompleted).Peer
			m.bg.run(func(ctx context.Context) { m.syncCatalog(ctx, p) })
		}
	}
}

// catalogResync is how often connected peers' catalogs are read again (gossip is the fast path;
// this catches what it missed), catalogResyncPeers how many randomly chosen peers are read each
// time (anti-entropy: what one peer has reaches every node within a few rounds without every
// node asking every peer), and catalogOverlap how far back each re-read reaches before the last.
const (
	catalogResync      = 5 * time.Second
	catalogResyncPeers = 3
	catalogOverlap     = 2 * time.Second
)

func (m *models) syncCatalog(ctx context.Context, p peer.ID) {
	if protos, err := m.n.host.Peerstore().SupportsProtocols(p, catalog.ID); err != nil || len(protos) == 0 {
		return // not identified yet, or not a califusion node
	}
	m.mu.Lock()
	if m.syncing[p] {
		m.mu.Unlock()
		return
	}
	m.syncing[p] = true
	var since time.Time
	if last, ok := m.synced[p]; ok {
		since = last.Add(-catalogOverlap) // records land in a peer's store a little late
	}
	m.mu.Unlock()
	started := time.Now()
	// A sync admits at most catalogSyncMax manifests from one peer (the rest come next time);
	// the listing is in the order the peer added them, so a parent comes before its children.
	// Refusals cost a signature check each, so the manifests looked at are bounded too.
	admitted, looked := 0, 0
	acc, ref, next, err := catalog.Sync(ctx, m.n.host, p, since, m.known, func(b []byte) error {
		if admitted >= catalogSyncMax || looked >= 4*catalogSyncMax {
			return catalog.ErrEnough
		}
		looked++
		_, added, err := m.add(b, "catalog")
		if added {
			admitted++
		}
		return err
	})
	m.mu.Lock()
	delete(m.syncing, p)
	if err == nil {
		if next.IsZero() { // a peer that does not report its clock: ours, with a margin for skew
			next = started.Add(-time.Minute)
		}
		m.synced[p] = next
	}
	m.mu.Unlock()
	if errors.Is(err, catalog.ErrEnough) {
		// Not marked as synced: the next sync asks since the same time and skips what is known.
		m.log.Info("catalog sync stopped at its bound: the rest is read next time", "peer", p, "manifests", acc, "refused", ref)
		return
	}
	if err != nil {
		m.log.Debug("catalog sync", "peer", p, "err", err)
		return
	}
	if acc+ref > 0 {
		m.log.Debug("catalog synced", "peer", p, "manifests", acc, "refused", ref)
	}
}

// providers finds peers that serve model id: DHT providers, announcers and connected peers that
// answer with its leaves are all tried.
func (m *models) providers(ctx context.Context, id content.ModelID) []peer.ID {
	seen := map[peer.ID]bool{m.n.host.ID(): true}
	var out []peer.ID
	add := func(p peer.ID) {
		if !seen[p] && len(out) < m.n.cfg.Transfer.MaxProviders {
			seen[p] = true
			out = append(out, p)
		}
	}
	m.mu.Lock()
	for p := range m.announced[id] {
		add(p)
	}
	m.mu.Unlock()
	if rec, err := m.get(id); err == nil {
		if pub, err := rec.Manifest.PublisherID(); err == nil && m.n.host.Network().Connectedness(pub) == network.Connected {
			add(pub)
		}
	}
	// The DHT is asked in any case (it finds seeders nobody announced), but briefly when
	// providers are already known.
	wait := 10 * time.Second
	if len(out) > 0 {
		wait = 2 * time.Second
	}
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for ai := range m.n.dht.FindProvidersAsync(fctx, modelCID(id), m.n.cfg.Transfer.MaxProviders) {
		if ai.ID == m.n.host.ID() {
			continue
		}
		m.n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		add(ai.ID)
	}
	return out
}

// decrypt writes the plaintext of a complete, unlocked model to w.
func (m *models) decrypt(id content.ModelID, w io.Writer) (*record, error) {
	rec, err := m.get(id)
	if err != nil {
		return nil, err
	}
	if !m.complete(rec) {
		return nil, fmt.Errorf("%w: %d of %d chunks are here; fetch the model first", errIncomplete, m.chunks.count(id), rec.Manifest.Chunks)
	}
	key, err := m.keys.get(id)
	if err != nil {
		return nil, errNotUnlocked
	}
	defer key.Wipe()
	return rec, content.Decrypt(w, rec.Manifest, key, func(i uint64, buf []byte) ([]byte, error) {
		return m.chunks.read(id, i, buf)
	})
}

// plaintext decrypts a complete, unlocked model into memory, in a buffer of exactly its size.
func (m *models) plaintext(id content.ModelID) ([]byte, error) {
	var buf bytes.Buffer
	if rec, err := m.get(id); err == nil {
		buf.Grow(int(rec.Manifest.Size))
	}
	if _, err := m.decrypt(id, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// export decrypts a complete model into path, returning its size and SHA-256. The plaintext goes
// to a temporary file (mode 0600) beside path that is then moved into place, so no existing inode
// is ever written through (a link to a secret stays intact). A path that resolves to the
// datadir or into it is refused (errInDatadir), and so is an existing path unless overwrite is
// set (errExists; the no-overwrite move is a hard link, which cannot replace a file created
// meanwhile).
func (m *models) export(id content.ModelID, path string, overwrite bool) (uint64, [32]byte, error) {
	var sum [32]byte
	target, err := m.n.dir.outside(path)
	if err != nil {
		return 0, sum, err
	}
	if _, err := os.Lstat(target); err == nil && !overwrite {
		return 0, sum, fmt.Errorf("%w: %s", errExists, path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".part*")
	if err != nil {
		return 0, sum, fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	err = tmp.Chmod(0o600)
	var rec *record
	if err == nil {
		rec, err = m.decrypt(id, io.MultiWriter(tmp, h))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, sum, err
	}
	if overwrite {
		err = os.Rename(tmp.Name(), target)
	} else if err = os.Link(tmp.Name(), target); errors.Is(err, os.ErrExist) {
		return 0, sum, fmt.Errorf("%w: %s", errExists, path)
	} else if err != nil {
		// A file system without hard links: check again and rename.
		if _, lerr := os.Lstat(target); lerr == nil {
			return 0, sum, fmt.Errorf("%w: %s", errExists, path)
		}
		err = os.Rename(tmp.Name(), target)
	}
	if err != nil {
		return 0, sum, fmt.Errorf("move the export into %s: %w", path, err)
	}
	h.Sum(sum[:0])
	return rec.Manifest.Size, sum, nil
}

var (
	errIncomplete  = errors.New("model is not complete on this node")
	errNotUnlocked = errors.New("this node does not hold the model's key")
)
