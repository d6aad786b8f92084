package catalog

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/internal/gossip"
	"github.com/califusion/califusion/node/internal/limit"
	"github.com/califusion/califusion/node/internal/tasks"
	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/protocols/announce"
	catalogwire "github.com/califusion/califusion/protocols/catalog"
	"github.com/califusion/califusion/store"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
)

// Limits on what peers may make a node store or verify. Tests change them.
var (
	// MaxCatalogPerPublisher caps the catalog entries a node stores per publisher (this node's
	// own are exempt); beyond it manifests are refused, never stored.
	MaxCatalogPerPublisher = 1024
	// AnnounceBurst and AnnounceEvery bound the model announcements one author may gossip.
	AnnounceBurst = 32
	AnnounceEvery = time.Second
	// CatalogSyncMax bounds the manifests admitted from one peer in one catalog sync.
	CatalogSyncMax = 512
)

// limiterPeers is how many peers a per-peer rate limiter tracks.
const limiterPeers = 4096

// Refusals of catalog admission.
var (
	ErrUnknownParent = errors.New("its parent is not in this node's catalog")
	ErrLineage       = errors.New("its lineage does not verify")
	ErrQuota         = errors.New("its publisher has too many models in this node's catalog")
	errAnnounceRate  = errors.New("the author announces models faster than allowed")
)

// Config configures the catalog.
type Config struct {
	// Self is this node's peer ID: its own models are exempt from the quota and from the
	// announcement rate, and it is never its own provider. Empty: Deps.Host's ID.
	Self peer.ID
	// MaxProviders bounds the peers Providers returns (transfer.max_providers).
	MaxProviders int
	// Log is the catalog's logger (nil: discard).
	Log *slog.Logger
	// Metrics counts DHT provide failures (nil: none).
	Metrics *metrics.Set
}

// Deps are the catalog's dependencies. Store is required; the others may be nil, and what needs
// them is then skipped (no Host: no catalog server, no catalog sync; no PubSub: no models topic,
// Announce does nothing; no Routing: Providers does not ask the DHT; no Provider: Provide does
// nothing; no Anchors: nothing is read from anchors; no Holdings: nothing is provided at start).
type Deps struct {
	Store    *store.Store
	Host     host.Host
	PubSub   *pubsub.PubSub
	Routing  Routing
	Provider Provider
	Anchors  Anchors
	Holdings Holdings
}

// Service is the node's model catalog. New loads it from the store, and Get, Add, All and the
// rest work from then on; Start serves it to peers, joins the models topic and starts the
// background work (receiving announcements, catalog sync, filling from anchors, providing).
type Service struct {
	cfg   Config
	d     Deps
	log   *slog.Logger
	index *Index // the catalog by time added, for catalog sync answers

	verified sync.Map // content.ModelID → *Record whose manifest verified
	depths   sync.Map // content.ModelID → its depth in its lineage (Depth)
	coords   sync.Map // lineage root ModelID → *Coordination (its coordinator update)

	provideMu      sync.Mutex
	providePending []multihash.Multihash // keys waiting for provideLoop
	provideKick    chan struct{}

	announceLimit *limit.PerPeer // model announcements per author

	quotaMu      sync.Mutex
	perPublisher map[peer.ID]int // catalog entries stored per publisher (signer)

	onAdded atomic.Pointer[func(*Record)] // OnAdded

	mu        sync.Mutex
	announced map[content.ModelID]map[peer.ID]bool // peers that announced each model
	synced    map[peer.ID]time.Time                // each peer's clock at its last catalog read: the next asks since then
	syncing   map[peer.ID]bool
	liars     map[peer.ID]bool // peers that answered Resolve with a manifest not asked for

	topicMu sync.RWMutex
	topic   *gossip.Topic // nil until Start joins it
	server  *catalogwire.Server
	bg      *tasks.Group

	closeOnce sync.Once
}

// New loads the catalog's index and per-publisher counts from the store. It starts nothing.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Store == nil {
		return nil, errors.New("catalog: no store")
	}
	if cfg.Self == "" && deps.Host != nil {
		cfg.Self = deps.Host.ID()
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg: cfg, d: deps, log: log,
		announced: map[content.ModelID]map[peer.ID]bool{}, synced: map[peer.ID]time.Time{}, syncing: map[peer.ID]bool{},
		provideKick:   make(chan struct{}, 1),
		announceLimit: limit.New(AnnounceBurst, AnnounceEvery, limiterPeers),
	}
	var err error
	if s.index, err = loadIndex(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Index is the catalog by time added: what the catalog protocol serves (catalogwire.Source).
func (s *Service) Index() *Index { return s.index }

// Start serves the catalog to peers (rate-limited per peer), joins the models topic, and starts
// receiving announcements, syncing peers' catalogs, filling the catalog from anchors, and
// providing. Close stops it all.
func (s *Service) Start(ctx context.Context) error {
	s.bg = tasks.New(ctx)
	if h := s.d.Host; h != nil {
		// Catalog streams are rate-limited per peer; one over its rate is reset before it is read.
		catalogLimit := limit.New(catalogwire.RequestBurst, catalogwire.RequestEvery, limiterPeers)
		s.server = catalogwire.NewServer(h, s.index, catalogwire.ServerConfig{Allow: catalogLimit.Allow}, s.log)
	}
	if ps := s.d.PubSub; ps != nil {
		topic, err := gossip.Join(ps, announce.ModelsTopic, s.log, s.validate)
		if err != nil {
			s.Close()
			return err
		}
		s.topicMu.Lock()
		s.topic = topic
		s.topicMu.Unlock()
		s.bg.Go(func(ctx context.Context) { s.receiveAnnouncements(ctx, topic.Sub) })
	}
	if s.d.Host != nil {
		s.bg.Go(s.syncCatalogs)
	}
	s.bg.Go(s.fillFromAnchors)
	if s.d.Provider != nil {
		s.bg.Go(s.provideLoop)
		s.bg.Go(s.provideAll)
	}
	return nil
}

// Close stops what Start started, in reverse: the background work, the models topic, the catalog
// server. It is safe to call more than once, and without Start.
func (s *Service) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.bg != nil {
			s.bg.Stop()
		}
		s.topicMu.Lock()
		if s.topic != nil {
			err = s.topic.Close()
		}
		s.topicMu.Unlock()
		if s.server != nil {
			if cerr := s.server.Close(); err == nil {
				err = cerr
			}
		}
	})
	return err
}

// OnAdded sets fn to be called with every model newly added to the catalog from the network (not
// with the ones this node publishes); nil removes it. fn must not block.
func (s *Service) OnAdded(fn func(*Record)) {
	if fn == nil {
		s.onAdded.Store(nil)
		return
	}
	s.onAdded.Store(&fn)
}
