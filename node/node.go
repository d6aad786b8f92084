package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/aviate-labs/agent-go/identity"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/anchoring"
	"github.com/califusion/califusion/node/autotrain"
	"github.com/califusion/califusion/node/campaign"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/custody"
	"github.com/califusion/califusion/node/discovery"
	"github.com/califusion/califusion/node/fetch"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/node/keys"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/node/presence"
	"github.com/califusion/califusion/node/publish"
	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/node/storage"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/store"
	"github.com/califusion/califusion/store/blob"
	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/provider"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// DHTPrefix is the protocol prefix of CaliFusion's Kademlia DHT, which keeps it apart from the
// public IPFS DHT.
const DHTPrefix = "/califusion"

// BlobDir is the datadir folder of model ciphertext; the rounds service's folders are
// rounds.RoundsDir, rounds.UpdatesDir and rounds.TrainDir.
const BlobDir = "blobs"

// Node is one califusiond daemon: it builds its services, starts them in order and stops them
// in reverse. The services hold no reference to it; each gets what it uses in its constructor.
type Node struct {
	cfg   *config.Config
	dir   *Datadir
	log   *slog.Logger
	level *slog.LevelVar // the log's level, changed by node_log_level (nil: fixed)
	key   crypto.PrivKey
	icpID identity.Identity
	token string

	reg       *prometheus.Registry
	store     *store.Store
	host      host.Host
	dht       *dht.IpfsDHT
	provider  *provider.SweepingProvider // provider records for the models this node serves
	bootstrap []peer.AddrInfo            // p2p.bootstrap, parsed once (the DHT and the dialer use it)
	pubsub    *pubsub.PubSub
	jobs      *jobs.Manager
	kex       *kex.Server

	metrics     *metrics.Set // the node's collectors (node/metrics), given to the services
	metricsAddr string       // the separate metrics listener's bound address ("" when off)

	ledger         *ledger.Service
	anchoring      *anchoring.Service
	chunks         *fetch.ChunkStore
	keyring        *keys.Keyring
	catalog        *catalog.Service
	fetch          *fetch.Service
	keys           *keys.Client
	coordinator    *keys.Coordinator // nil unless the node is a coordinator
	publish        *publish.Service
	rounds         *rounds.Service
	campaigns      *campaign.Service // a coordinator's (nil elsewhere)
	keysRounds     laterRounds       // the rounds service as the keys service sees it (set when rounds starts)
	campaignsLater laterCampaigns    // the campaigns as the rounds service sees them (set when campaigns start)
	storage        *storage.Service
	presence       *presence.Service
	peerBook       *discovery.PeerBook
	dialer         *discovery.Dialer
	rpc            *rpcServer

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	stops    []func() error // in start order; Close runs them in reverse
	started  bool
	closed   bool
	closeErr error
}

// New checks the configuration and loads the identity; it starts nothing.
func New(cfg *config.Config, dir *Datadir, log *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key, err := dir.Identity()
	if err != nil {
		return nil, err
	}
	token, err := dir.Token()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	icpID, err := ledger.Identity(cfg.ICP, key) // a PEM the node cannot use is refused at start
	if err != nil {
		return nil, err
	}
	anch, err := anchoring.New(cfg.Calimero, key)
	if err != nil {
		return nil, err
	}
	// The ledger and Calimero clients report their calls from their first one: the collectors
	// exist from here, and are registered when the node starts (initMetrics).
	m := metrics.New(metrics.BuildFromRuntime(VersionString()))
	led := ledger.New(cfg.ICP, icpID)
	led.SetMetrics(m)
	anch.SetMetrics(m)
	return &Node{cfg: cfg, dir: dir, log: log, key: key, icpID: icpID, token: token, metrics: m, ledger: led, anchoring: anch}, nil
}

// Start brings up the node's services in order. On failure the started ones are stopped again
// and the error says which service failed.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return errors.New("node already started")
	}
	n.started = true
	n.removeRPCAddr() // a daemon killed with -9 leaves its rpc.addr behind; it must not look ready
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.reg = prometheus.NewRegistry()
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := n.initMetrics(); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"store", n.startStore},
		{"libp2p host", n.startHost},
		{"dht", n.startDHT},
		{"pubsub", n.startPubSub},
		{"peer book", n.startPeerBook},
		{"presence", n.startPresence},
		{"model store", n.startModelStore},
		{"catalog", n.startCatalog},
		{"jobs", n.startJobs},
		{"keys", n.startKeys},
		{"fetch", n.startFetch},
		{"rounds", n.startRounds},
		{"campaigns", n.startCampaigns},
		{"auto-train", n.startAutoTrain},
		{"storage", n.startStorage},
		{"custody", n.startCustody},
		{"discovery", n.startDiscovery},
		{"admin rpc", n.startRPC},
		{"metrics listener", n.startMetrics},
	}
	for _, s := range steps {
		if err := s.fn(n.ctx); err != nil {
			n.stopAll()
			return fmt.Errorf("start %s: %w", s.name, err)
		}
	}
	// rpc.addr is written only once everything serves: its presence means "ready".
	if err := n.writeRPCAddr(); err != nil {
		n.stopAll()
		return err
	}
	n.log.Info("ready", "peer", n.host.ID().String(), "rpc", n.rpc.addr, "addrs", n.listenAddrs(), "roles", n.cfg.Node.Roles)
	return nil
}

// service is what the start table starts and Close stops.
type service interface {
	Start(context.Context) error
	Close() error
}

// run starts s and registers its Close.
func (n *Node) run(ctx context.Context, s service) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	n.onStop(s.Close)
	return nil
}

// onStop registers a function Close runs, in reverse registration order.
func (n *Node) onStop(fn func() error) { n.stops = append(n.stops, fn) }

// Close stops every service in reverse start order. It is safe to call more than once.
func (n *Node) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return n.closeErr
	}
	n.closed = true
	n.closeErr = n.stopAll()
	return n.closeErr
}

func (n *Node) stopAll() error {
	var errs []error
	for i := len(n.stops) - 1; i >= 0; i-- {
		if err := n.stops[i](); err != nil {
			errs = append(errs, err)
		}
	}
	n.stops = nil
	if n.cancel != nil {
		n.cancel()
	}
	return errors.Join(errs...)
}

// Host returns the libp2p host (nil before Start).
func (n *Node) Host() host.Host { return n.host }

// RPCAddr returns the admin listener's bound host:port (empty before Start).
func (n *Node) RPCAddr() string {
	if n.rpc == nil {
		return ""
	}
	return n.rpc.addr
}

// Done is closed when the node shuts down.
func (n *Node) Done() <-chan struct{} { return n.ctx.Done() }

// ICPPrincipal returns the node's ICP principal: the paying account's (the dfx PEM's when one is
// set, else the self-authenticating principal of the node's Ed25519 identity key).
func (n *Node) ICPPrincipal() string { return n.icpID.Sender().Encode() }

func (n *Node) startStore(context.Context) error {
	s, err := store.Open(n.dir.Join(StoreDir), store.Options{
		GCInterval:     n.cfg.Store.GCInterval.Duration,
		GCDiscardRatio: n.cfg.Store.GCDiscardRatio,
		Logger:         n.log.With("subsys", "store"),
	})
	if err != nil {
		return err
	}
	s.Start()
	n.store = s
	n.onStop(s.Close)
	return nil
}

func (n *Node) startHost(context.Context) error {
	h, err := newHost(n.cfg.P2P, n.key, n.reg)
	if err != nil {
		return err
	}
	n.host = h
	n.onStop(h.Close)
	return nil
}

func (n *Node) startDHT(ctx context.Context) error {
	boot, err := discovery.AddrInfos(n.cfg.P2P.Bootstrap)
	if err != nil {
		return err
	}
	n.bootstrap = boot
	d, err := dht.New(n.host,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(DHTPrefix),
		dht.BootstrapPeers(boot...),
	)
	if err != nil {
		return err
	}
	n.dht = d
	n.onStop(d.Close)
	// Provider records go out through kad-dht's sweeping provider: keys queued while a burst is
	// under way are grouped by keyspace region and share one lookup per region (providing each
	// key on its own took a lookup per key: at 50 publishes a second a third of the network's
	// CPU). It reprovides on its own schedule and provides what was queued while offline once
	// the node comes online.
	prov, err := provider.New(
		provider.WithHost(n.host),
		provider.WithReplicationFactor(d.BucketSize()),
		provider.WithSelfAddrs(d.FilteredAddrs),
		provider.WithRouter(d),
		provider.WithMessageSender(d.MessageSender()),
		provider.WithAddLocalRecord(func(ctx context.Context, h multihash.Multihash) error {
			return d.Provide(ctx, cid.NewCidV1(cid.Raw, h), false)
		}),
	)
	if err != nil {
		return fmt.Errorf("dht provider: %w", err)
	}
	n.provider = prov
	n.onStop(prov.Close)
	return nil
}

func (n *Node) startPubSub(ctx context.Context) error {
	// gossipsub lives as long as the context it is built with.
	ctx, cancel := context.WithCancel(ctx)
	n.onStop(func() error { cancel(); return nil })
	ps, err := pubsub.NewGossipSub(ctx, n.host,
		pubsub.WithMessageSigning(true),
		pubsub.WithStrictSignatureVerification(true),
		pubsub.WithMaxMessageSize(1<<20),
	)
	if err != nil {
		return err
	}
	n.pubsub = ps
	return nil
}

func (n *Node) startPeerBook(ctx context.Context) error {
	n.peerBook = discovery.NewPeerBook(n.host, n.store, n.log.With("subsys", "peers"))
	return n.run(ctx, n.peerBook)
}

func (n *Node) startPresence(ctx context.Context) error {
	n.presence = presence.New(presence.Config{
		Self: n.host.ID(), Roles: n.cfg.Node.Roles, Version: VersionString(),
		Interval: n.cfg.P2P.PresenceInterval.Duration, Addrs: n.listenAddrs, Log: n.log.With("subsys", "presence"),
	}, n.store, n.pubsub)
	return n.run(ctx, n.presence)
}

func (n *Node) startJobs(context.Context) error {
	n.jobs = jobs.NewManager(n.store, n.log.With("subsys", "jobs"))
	n.jobs.StartPruning(jobs.PruneInterval, jobs.Retention)
	n.onStop(n.jobs.Close)
	return nil
}

// startModelStore opens what holds the models: their ciphertext (the chunk store) and their
// keys (the keyring). It closes after the jobs manager, which cancels the fetches writing to it.
func (n *Node) startModelStore(context.Context) error {
	bd, err := blob.OpenDir(n.dir.Join(BlobDir))
	if err != nil {
		return err
	}
	master, err := keys.LoadMasterKey(n.dir.Join(keys.MasterKeyFile))
	if err != nil {
		return err
	}
	n.keyring, err = keys.NewKeyring(master, n.store)
	clear(master)
	if err != nil {
		return err
	}
	n.onStop(n.keyring.Close) // wipes the keys held in memory for rounds
	n.chunks = fetch.NewChunkStore(n.store, bd)
	n.onStop(n.chunks.Close)
	return nil
}

func (n *Node) startCatalog(ctx context.Context) error {
	var err error
	n.catalog, err = catalog.New(catalog.Config{Self: n.host.ID(), MaxProviders: n.cfg.Transfer.MaxProviders, Log: n.log.With("subsys", "models"), Metrics: n.metrics},
		catalog.Deps{Store: n.store, Host: n.host, PubSub: n.pubsub, Routing: n.dht, Provider: n.provider, Anchors: n.anchoring, Holdings: n.chunks})
	if err != nil {
		return err
	}
	return n.run(ctx, n.catalog)
}

// startKeys starts the kex server, the key client (escrow, pay, unlock) and, on a coordinator,
// the escrow and release handlers; then the publisher, which escrows through the client.
func (n *Node) startKeys(ctx context.Context) error {
	n.kex = kex.NewServer(ctx, n.host, n.log.With("subsys", "kex"))
	n.onStop(n.kex.Close)
	deps := keys.Deps{
		Store: n.store, Keys: n.keyring, Host: n.host, Kex: n.kex, Catalog: n.catalog,
		Ledger: n.ledger, Anchoring: n.anchoring, Directory: n.presence, Rounds: &n.keysRounds,
	}
	cfg := keys.Config{Self: n.host.ID(), Log: n.log.With("subsys", "keys"), Metrics: n.metrics, Key: n.key}
	n.keys = keys.NewClient(cfg, deps)
	if n.cfg.HasRole(config.RoleCoordinator) {
		n.coordinator = keys.NewCoordinator(cfg, deps)
		if err := n.run(ctx, n.coordinator); err != nil {
			return err
		}
	}
	n.startTraining()
	n.publish = publish.New(publish.Config{
		Self: n.host.ID(), Key: n.key, Payee: n.ICPPrincipal(),
		IsPublisher: n.cfg.HasRole(config.RolePublisher), IsCoordinator: n.cfg.HasRole(config.RoleCoordinator),
		ChunkSize: n.cfg.Transfer.ChunkSize, Log: n.log.With("subsys", "models"),
	}, publish.Deps{Store: n.store, Chunks: n.chunks, Keys: n.keyring, Catalog: n.catalog, Anchoring: n.anchoring, Escrow: n.keys})
	return nil
}

// startFetch serves chunks and resumes the fetches a stop interrupted.
func (n *Node) startFetch(ctx context.Context) error {
	n.fetch = fetch.New(fetch.Config{
		Transfer: n.cfg.Transfer, Serving: fetch.ChunkServing(n.cfg.P2P), Datadir: n.dir.Path, Log: n.log.With("subsys", "models"), Metrics: n.metrics,
	}, fetch.Deps{Store: n.store, Host: n.host, Chunks: n.chunks, Catalog: n.catalog, Anchoring: n.anchoring, Keys: n.keyring, Jobs: n.jobs})
	return n.run(ctx, n.fetch)
}

func (n *Node) startRounds(ctx context.Context) error {
	var grants rounds.Grants // only a coordinator admits submissions
	if n.coordinator != nil {
		grants = n.coordinator
	}
	var err error
	n.rounds, err = rounds.New(rounds.Config{
		Self: n.host.ID(), IsCoordinator: n.cfg.HasRole(config.RoleCoordinator), IsTrainer: n.cfg.HasRole(config.RoleTrainer),
		Train: n.cfg.Train, RoundsDir: n.dir.Join(rounds.RoundsDir), UpdatesDir: n.dir.Join(rounds.UpdatesDir), TrainDir: n.dir.Join(rounds.TrainDir),
		Log: n.log, Metrics: n.metrics,
	}, rounds.Deps{
		Store: n.store, Host: n.host, PubSub: n.pubsub, Kex: n.kex, Catalog: n.catalog, Models: n.fetch, Publisher: n.publish,
		Keyring: n.keyring, Keys: n.keys, Grants: grants, Anchoring: n.anchoring, Directory: n.presence,
		Rewards: &n.campaignsLater, Campaigns: &n.campaignsLater, Ledger: n.ledger,
	})
	if err != nil {
		return err
	}
	n.keysRounds.svc.Store(n.rounds)
	return n.run(ctx, n.rounds)
}

// startStorage runs the storage policy: model rm, pins, gc and the storage cap, checked
// periodically and after every completed fetch.
func (n *Node) startStorage(ctx context.Context) error {
	var err error
	n.storage, err = storage.New(storage.Config{
		Self: n.host.ID(), MaxBlobBytes: n.cfg.Store.MaxBlobBytes, CheckEvery: n.cfg.Store.BlobCheckEvery.Duration, Log: n.log.With("subsys", "storage"),
	}, storage.Deps{Store: n.store, Catalog: n.catalog, Chunks: n.chunks, Jobs: n.jobs, Rounds: n.rounds, Provider: n.provider, Keys: n.keyring})
	if err != nil {
		return err
	}
	if err := n.run(ctx, n.storage); err != nil {
		return err
	}
	n.fetch.OnFetched(n.storage.Fetched)
	n.onStop(func() error { n.fetch.OnFetched(nil); return nil })
	return nil
}

// startCampaigns runs a coordinator's campaigns (node/campaign) on its rounds service.
func (n *Node) startCampaigns(ctx context.Context) error {
	if !n.cfg.HasRole(config.RoleCoordinator) {
		return nil
	}
	n.campaigns = campaign.New(campaign.Config{Log: n.log.With("subsys", "campaigns"), Self: n.host.ID().String(), AdoptMaxReward: n.cfg.Train.AdoptMaxReward},
		campaign.Deps{Store: n.store, Rounds: n.rounds, Ledger: n.ledger, Accounts: n.coordinator, Catalog: n.catalog})
	n.campaignsLater.svc.Store(n.campaigns)
	return n.run(ctx, n.campaigns)
}

// startAutoTrain makes a trainer with train.auto join rounds by itself (node/autotrain).
func (n *Node) startAutoTrain(ctx context.Context) error {
	if !n.cfg.HasRole(config.RoleTrainer) || !n.cfg.Train.Auto {
		return nil
	}
	from, to, err := config.ParseQuietHours(n.cfg.Train.QuietHours) // validated with the config
	if err != nil {
		return err
	}
	a := autotrain.New(autotrain.Config{MaxPerHour: n.cfg.Train.AutoPerHour, Quiet: autotrain.Window{From: from, To: to}, Log: n.log.With("subsys", "autotrain")}, n.rounds, n.catalog, n.keyring)
	return n.run(ctx, a)
}

// startCustody makes a coordinator fetch every version of the lineages it coordinates, so a
// version outlives the coordinator that aggregated it.
func (n *Node) startCustody(ctx context.Context) error {
	if !n.cfg.HasRole(config.RoleCoordinator) {
		return nil
	}
	c := custody.New(n.host.ID(), n.catalog, n.fetch, n.log.With("subsys", "custody"))
	if err := n.run(ctx, c); err != nil {
		return err
	}
	n.catalog.OnAdded(c.Added)
	n.onStop(func() error { n.catalog.OnAdded(nil); return nil })
	return nil
}

func (n *Node) startDiscovery(ctx context.Context) error {
	n.dialer = discovery.NewDialer(discovery.Config{
		Bootstrap: n.bootstrap, ConnLow: n.cfg.P2P.ConnLow, Interval: n.cfg.P2P.DiscoveryInterval.Duration, Log: n.log.With("subsys", "discovery"),
	}, n.host, n.dht, n.peerBook)
	return n.run(ctx, n.dialer)
}

func (n *Node) listenAddrs() []string {
	var out []string
	for _, a := range n.host.Addrs() {
		out = append(out, a.String())
	}
	return out
}
