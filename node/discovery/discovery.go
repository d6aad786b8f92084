// Package discovery keeps the node connected: a PeerBook remembers the addresses of every peer
// the node connects to (so a restarted node rejoins without bootstrap peers), and a Dialer joins
// the network (bootstrap peers, then remembered ones) and, while the node has fewer connections
// than it wants, dials peers from the DHT's routing table.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/califusion/califusion/node/internal/tasks"
	"github.com/califusion/califusion/store"
	kbucket "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Routing is what discovery uses of the DHT (*dht.IpfsDHT implements it).
type Routing interface {
	Bootstrap(ctx context.Context) error
	RoutingTable() *kbucket.RoutingTable
	GetClosestPeers(ctx context.Context, key string) ([]peer.ID, error)
}

// Config says whom to dial first and how many connections to keep.
type Config struct {
	Bootstrap []peer.AddrInfo
	ConnLow   int           // dial more while the node has fewer connections
	Interval  time.Duration // the slowest pace of the dialling loop (p2p.discovery_interval)
	Log       *slog.Logger
}

// PeerBook remembers the addresses of every peer the node connects to.
type PeerBook struct {
	host  host.Host
	store *store.Store
	log   *slog.Logger
	bg    *tasks.Group
}

// NewPeerBook returns the peer book over the node's store; Start subscribes it to connections.
func NewPeerBook(h host.Host, st *store.Store, log *slog.Logger) *PeerBook {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PeerBook{host: h, store: st, log: log}
}

// Start records every peer as it connects.
func (b *PeerBook) Start(ctx context.Context) error {
	// A peer is recorded as soon as it connects, with the addresses known then (for a peer this
	// node dialled, the one that worked), and again once identify completes, with the addresses
	// the peer listens on (an inbound connection only shows the peer's ephemeral port).
	sub, err := b.host.EventBus().Subscribe([]any{new(event.EvtPeerConnectednessChanged), new(event.EvtPeerIdentificationCompleted)})
	if err != nil {
		return err
	}
	b.bg = tasks.New(ctx)
	b.bg.Go(func(ctx context.Context) {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-sub.Out():
				switch e := ev.(type) {
				case event.EvtPeerConnectednessChanged:
					if e.Connectedness == network.Connected {
						b.remember(e.Peer, b.host.Peerstore().Addrs(e.Peer))
					}
				case event.EvtPeerIdentificationCompleted:
					if len(e.ListenAddrs) > 0 {
						b.remember(e.Peer, e.ListenAddrs)
					}
				}
			}
		}
	})
	return nil
}

// Close stops recording.
func (b *PeerBook) Close() error {
	if b.bg == nil {
		return nil
	}
	return b.bg.Stop()
}

// Dialer joins the network and keeps enough connections.
type Dialer struct {
	cfg     Config
	host    host.Host
	routing Routing
	book    *PeerBook
	bg      *tasks.Group
}

// NewDialer returns the dialling loop; it starts from the bootstrap peers, then the book's.
func NewDialer(cfg Config, h host.Host, r Routing, book *PeerBook) *Dialer {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Dialer{cfg: cfg, host: h, routing: r, book: book}
}

// Start begins dialling.
func (s *Dialer) Start(ctx context.Context) error {
	s.bg = tasks.New(ctx)
	s.bg.Go(s.dial)
	return nil
}

// Close stops dialling.
func (s *Dialer) Close() error {
	if s.bg == nil {
		return nil
	}
	return s.bg.Stop()
}

func (b *PeerBook) remember(p peer.ID, addrs []ma.Multiaddr) {
	if len(addrs) == 0 {
		return
	}
	rec := store.PeerRecord{LastSeen: time.Now().UTC()}
	for _, a := range addrs {
		rec.Addrs = append(rec.Addrs, a.String())
	}
	if err := b.store.Put(store.PeerKey(p.String()), &rec); err != nil {
		b.log.Warn("remember peer", "peer", p, "err", err)
	}
}

// Known returns the peers remembered by the peer book.
func (b *PeerBook) Known() ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	err := b.store.Scan(store.PeerPrefix(), func(k store.Key, decode func(any) error) error {
		id, err := peer.Decode(string(k[len(store.PeerPrefix()):]))
		if err != nil {
			return nil // a key we cannot parse is skipped, not fatal
		}
		var rec store.PeerRecord
		if err := decode(&rec); err != nil {
			return nil
		}
		ai := peer.AddrInfo{ID: id}
		for _, a := range rec.Addrs {
			if m, err := ma.NewMultiaddr(a); err == nil {
				ai.Addrs = append(ai.Addrs, m)
			}
		}
		out = append(out, ai)
		return nil
	})
	return out, err
}

// dial joins the network (bootstrap peers, then remembered peers) and, while the node has fewer
// connections than ConnLow, keeps connecting to peers from the DHT routing table. It polls
// quickly at first and backs off to Interval.
func (s *Dialer) dial(ctx context.Context) {
	known, err := s.book.Known()
	if err != nil {
		s.cfg.Log.Warn("read peer book", "err", err)
	}
	s.connectAll(ctx, append(append([]peer.AddrInfo(nil), s.cfg.Bootstrap...), known...))
	if err := s.routing.Bootstrap(ctx); err != nil && !errors.Is(err, context.Canceled) {
		s.cfg.Log.Warn("dht bootstrap", "err", err)
	}
	wait := 250 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if len(s.host.Network().Peers()) < s.cfg.ConnLow {
			s.fillFromRoutingTable(ctx)
		}
		wait = min(wait*2, s.cfg.Interval)
	}
}

func (s *Dialer) fillFromRoutingTable(ctx context.Context) {
	var todo []peer.AddrInfo
	for _, p := range s.routing.RoutingTable().ListPeers() {
		if p != s.host.ID() && s.host.Network().Connectedness(p) != network.Connected {
			todo = append(todo, s.host.Peerstore().PeerInfo(p))
		}
	}
	if len(todo) == 0 {
		// Nothing new in the table: ask the DHT for peers near us, which fills it.
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s.routing.GetClosestPeers(qctx, string(s.host.ID()))
		cancel()
		return
	}
	s.connectAll(ctx, todo)
}

// connectAll dials peers concurrently, each under its own timeout, and waits for all.
func (s *Dialer) connectAll(ctx context.Context, peers []peer.AddrInfo) {
	done := make(chan struct{}, len(peers))
	for _, ai := range peers {
		go func() {
			defer func() { done <- struct{}{} }()
			if ai.ID == s.host.ID() {
				return
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := s.host.Connect(cctx, ai); err != nil {
				s.cfg.Log.Debug("connect failed", "peer", ai.ID, "err", err)
			}
		}()
	}
	for range peers {
		<-done
	}
}

// AddrInfos parses full /p2p/ multiaddrs, merging addresses of the same peer.
func AddrInfos(addrs []string) ([]peer.AddrInfo, error) {
	var mas []ma.Multiaddr
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return nil, fmt.Errorf("peer address %q: %w", a, err)
		}
		mas = append(mas, m)
	}
	out, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("peer addresses: %w", err)
	}
	return out, nil
}
