package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/store"
	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/provider"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DHTPrefix is the protocol prefix of CaliFusion's Kademlia DHT, which keeps it apart from the
// public IPFS DHT.
const DHTPrefix = "/califusion"

// Node is one califusiond daemon.
type Node struct {
	cfg   *config.Config
	dir   *Datadir
	log   *slog.Logger
	key   crypto.PrivKey
	token string

	reg       *prometheus.Registry
	store     *store.Store
	host      host.Host
	dht       *dht.IpfsDHT
	provider  *provider.SweepingProvider // provider records for the models this node serves
	pubsub    *pubsub.PubSub
	jobs      *jobs.Manager
	models    *models
	rounds    *rounds
	anchoring *anchoring
	ledger    *ledger
	kex       *kex.Server
	rpc       *adminrpc.Server
	httpSrv   *http.Server
	rpcAddr   string

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
	n := &Node{cfg: cfg, dir: dir, log: log, key: key, token: token}
	n.ledger = &ledger{n: n}
	if _, err := n.icpIdentity(); err != nil {
		return nil, err // a PEM the node cannot use is refused at start
	}
	if n.anchoring, err = n.newAnchoring(); err != nil {
		return nil, err
	}
	return n, nil
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
	// A daemon killed with -9 leaves its rpc.addr behind; it must not look ready.
	os.Remove(n.dir.Join(adminrpc.AddrFile))
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.reg = prometheus.NewRegistry()
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

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
		{"models", n.startModels},
		{"keys", n.startKeys},
		{"jobs", n.startJobs},
		{"rounds", n.startRounds},
		{"discovery", n.startDiscovery},
		{"admin rpc", n.startRPC},
	}
	for _, s := range steps {
		if err := s.fn(ctx); err != nil {
			n.stopAll()
			return fmt.Errorf("start %s: %w", s.name, err)
		}
	}
	n.models.resumeFetches()
	// rpc.addr is written only once everything serves: its presence means "ready".
	if err := writeFileAtomic(n.dir.Join(adminrpc.AddrFile), []byte(n.rpcAddr+"\n"), 0o600); err != nil {
		n.stopAll()
		return err
	}
	n.log.Info("ready", "peer", n.host.ID().String(), "rpc", n.rpcAddr, "addrs", n.listenAddrs(), "roles", n.cfg.Node.Roles)
	return nil
}

// onStop registers a function Close runs, in reverse registration order.
func (n *Node) onStop(fn func() error) { n.stops = append(n.stops, fn) }

// spawn runs fn in a goroutine with its own context; Close cancels that context and waits for fn,
// in reverse start order, so a worker never outlives the services it uses.
func (n *Node) spawn(fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(n.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	n.onStop(func() error {
		cancel()
		<-done
		return nil
	})
}

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
func (n *Node) RPCAddr() string { return n.rpcAddr }

// Done is closed when the node shuts down.
func (n *Node) Done() <-chan struct{} { return n.ctx.Done() }

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

func (n *Node) startJobs(context.Context) error {
	n.jobs = jobs.NewManager(n.store, n.log.With("subsys", "jobs"))
	n.onStop(n.jobs.Close)
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
	boot, err := addrInfos(n.cfg.P2P.Bootstrap)
	if err != nil {
		return err
	}
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

func (n *Node) startPubSub(context.Context) error {
	// gossipsub lives as long as the context it is built with.
	ctx, cancel := context.WithCancel(n.ctx)
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

func (n *Node) startRPC(context.Context) error {
	ln, err := net.Listen("tcp", n.cfg.RPC.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (is another daemon using it? set rpc.addr or --rpc-addr): %w", n.cfg.RPC.Addr, err)
	}
	n.rpc = adminrpc.NewServer(n.token, n.log.With("subsys", "rpc"), promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{}), n.reg)
	n.registerRPC(n.rpc)
	n.httpSrv = &http.Server{
		Handler:           n.rpc,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       n.cfg.RPC.ReadTimeout.Duration,
		WriteTimeout:      n.cfg.RPC.WriteTimeout.Duration,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return n.ctx },
	}
	n.rpcAddr = ln.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := n.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("admin rpc stopped", "err", err)
		}
	}()
	n.onStop(func() error {
		os.Remove(n.dir.Join(adminrpc.AddrFile))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := n.httpSrv.Shutdown(ctx)
		if err != nil {
			err = n.httpSrv.Close()
		}
		<-served
		return err
	})
	return nil
}

// ICPPrincipal returns the node's ICP principal: the self-authenticating principal of its Ed25519
// identity key.
func (n *Node) ICPPrincipal() (string, error) {
	id, err := n.icpIdentity() // the account that pays and is paid: the dfx PEM's when one is set
	if err != nil {
		return "", err
	}
	return id.Sender().Encode(), nil
}

func (n *Node) listenAddrs() []string {
	var out []string
	for _, a := range n.host.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// addrInfos parses full /p2p/ multiaddrs, merging addresses of the same peer.
func addrInfos(addrs []string) ([]peer.AddrInfo, error) {
	var mas []ma.Multiaddr
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("peer address %q: %w", s, err)
		}
		mas = append(mas, a)
	}
	out, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("peer addresses: %w", err)
	}
	return out, nil
}
