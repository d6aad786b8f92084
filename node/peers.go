package node

import (
	"context"
	"errors"
	"time"

	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// startPeerBook remembers the addresses of every peer this node connects to, so that after a
// restart it can rejoin the network without bootstrap peers.
func (n *Node) startPeerBook(context.Context) error {
	// A peer is recorded as soon as it connects, with the addresses known then (for a peer this
	// node dialled, the one that worked), and again once identify completes, with the addresses
	// the peer listens on (an inbound connection only shows the peer's ephemeral port).
	sub, err := n.host.EventBus().Subscribe([]any{new(event.EvtPeerConnectednessChanged), new(event.EvtPeerIdentificationCompleted)})
	if err != nil {
		return err
	}
	log := n.log.With("subsys", "peers")
	remember := func(p peer.ID, addrs []ma.Multiaddr) {
		if len(addrs) == 0 {
			return
		}
		rec := store.PeerRecord{LastSeen: time.Now().UTC()}
		for _, a := range addrs {
			rec.Addrs = append(rec.Addrs, a.String())
		}
		if err := n.store.Put(store.PeerKey(p.String()), &rec); err != nil {
			log.Warn("remember peer", "peer", p, "err", err)
		}
	}
	n.spawn(func(ctx context.Context) {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-sub.Out():
				switch e := ev.(type) {
				case event.EvtPeerConnectednessChanged:
					if e.Connectedness == network.Connected {
						remember(e.Peer, n.host.Peerstore().Addrs(e.Peer))
					}
				case event.EvtPeerIdentificationCompleted:
					if len(e.ListenAddrs) > 0 {
						remember(e.Peer, e.ListenAddrs)
					}
				}
			}
		}
	})
	return nil
}

// knownPeers returns the peers remembered by the peer book.
func (n *Node) knownPeers() ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	err := n.store.Scan(store.PeerPrefix(), func(k store.Key, decode func(any) error) error {
		id, err := peer.Decode(string(k[len(store.PeerPrefix()):]))
		if err != nil {
			return nil // a key we cannot parse is skipped, not fatal
		}
		var rec store.PeerRecord
		if err := decode(&rec); err != nil {
			return nil
		}
		ai := peer.AddrInfo{ID: id}
		for _, s := range rec.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				ai.Addrs = append(ai.Addrs, a)
			}
		}
		out = append(out, ai)
		return nil
	})
	return out, err
}

// startDiscovery joins the network (bootstrap peers, then remembered peers) and, while the node
// has fewer connections than conn_low, keeps connecting to peers from the DHT routing table. It
// polls quickly at first and backs off to p2p.discovery_interval.
func (n *Node) startDiscovery(context.Context) error {
	log := n.log.With("subsys", "discovery")
	boot, err := addrInfos(n.cfg.P2P.Bootstrap)
	if err != nil {
		return err
	}
	n.spawn(func(ctx context.Context) {
		known, err := n.knownPeers()
		if err != nil {
			log.Warn("read peer book", "err", err)
		}
		n.connectAll(ctx, append(boot, known...))
		if err := n.dht.Bootstrap(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("dht bootstrap", "err", err)
		}
		wait := 250 * time.Millisecond
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			if len(n.host.Network().Peers()) < n.cfg.P2P.ConnLow {
				n.fillFromRoutingTable(ctx)
			}
			wait = min(wait*2, n.cfg.P2P.DiscoveryInterval.Duration)
		}
	})
	return nil
}

func (n *Node) fillFromRoutingTable(ctx context.Context) {
	var todo []peer.AddrInfo
	for _, p := range n.dht.RoutingTable().ListPeers() {
		if p != n.host.ID() && n.host.Network().Connectedness(p) != network.Connected {
			todo = append(todo, n.host.Peerstore().PeerInfo(p))
		}
	}
	if len(todo) == 0 {
		// Nothing new in the table: ask the DHT for peers near us, which fills it.
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n.dht.GetClosestPeers(qctx, string(n.host.ID()))
		cancel()
		return
	}
	n.connectAll(ctx, todo)
}

// connectAll dials peers concurrently, each under its own timeout, and waits for all.
func (n *Node) connectAll(ctx context.Context, peers []peer.AddrInfo) {
	done := make(chan struct{}, len(peers))
	for _, ai := range peers {
		go func(ai peer.AddrInfo) {
			defer func() { done <- struct{}{} }()
			if ai.ID == n.host.ID() {
				return
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := n.host.Connect(cctx, ai); err != nil {
				n.log.Debug("connect failed", "subsys", "discovery", "peer", ai.ID, "err", err)
			}
		}(ai)
	}
	for range peers {
		<-done
	}
}
