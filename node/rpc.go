package node

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// registerRPC registers every admin method this node serves.
func (n *Node) registerRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "node_info", n.rpcNodeInfo)
	adminrpc.Handle(s, "node_peers", n.rpcNodePeers)
	adminrpc.Handle(s, "node_connect", n.rpcNodeConnect)
	adminrpc.Handle(s, "node_directory", n.rpcNodeDirectory)
	adminrpc.Handle(s, "node_routing", n.rpcNodeRouting)
	n.registerModelRPC(s)
	n.registerLedgerRPC(s)
	n.registerPayRPC(s)
	n.registerRoundRPC(s)
}

func (n *Node) rpcNodeInfo(ctx context.Context, _ adminrpc.Empty) (adminrpc.NodeInfo, error) {
	id, err := n.icpIdentity() // the PEM's account when one is set: the one that pays
	if err != nil {
		return adminrpc.NodeInfo{}, err
	}
	principal := id.Sender().Encode()
	addrs := []string{}
	for _, a := range n.listenAddrs() {
		addrs = append(addrs, a+"/p2p/"+n.host.ID().String())
	}
	return adminrpc.NodeInfo{
		PeerID:       n.host.ID().String(),
		Addrs:        addrs,
		Roles:        append([]string{}, n.cfg.Node.Roles...),
		Version:      VersionString(),
		ICPPrincipal: principal,
		// An ICRC-1 account with the default subaccount is written as its owner's principal.
		ICPAccount:    principal,
		Datadir:       n.dir.Path,
		ICPAccountID:  icp.Account{Owner: id.Sender()}.ID().String(),
		ICPKeyKind:    icp.KeyKind(id),
		ICPLedgerKind: n.ledger.kind(),
	}, nil
}

func (n *Node) rpcNodePeers(ctx context.Context, _ adminrpc.Empty) ([]adminrpc.Peer, error) {
	out := []adminrpc.Peer{}
	for _, p := range n.host.Network().Peers() {
		entry := adminrpc.Peer{PeerID: p.String(), Addrs: []string{}}
		for _, c := range n.host.Network().ConnsToPeer(p) {
			entry.Addrs = append(entry.Addrs, c.RemoteMultiaddr().String())
		}
		entry.LatencyMS = float64(n.host.Peerstore().LatencyEWMA(p).Microseconds()) / 1000
		out = append(out, entry)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PeerID < out[j].PeerID })
	return out, nil
}

func (n *Node) rpcNodeConnect(ctx context.Context, p adminrpc.ConnectParams) (adminrpc.ConnectResult, error) {
	ai, err := peer.AddrInfoFromString(p.Addr)
	if err != nil {
		return adminrpc.ConnectResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "addr %q is not a full multiaddr ending in /p2p/<peer ID>: %v", p.Addr, err)
	}
	if ai.ID == n.host.ID() {
		return adminrpc.ConnectResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "addr %q is this node itself", p.Addr)
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := n.host.Connect(cctx, *ai); err != nil {
		return adminrpc.ConnectResult{}, &adminrpc.Error{Code: adminrpc.CodeUnavailable, Message: "could not connect to " + ai.ID.String() + ": check the address and that the peer is running", Data: err.Error()}
	}
	return adminrpc.ConnectResult{PeerID: ai.ID.String()}, nil
}

func (n *Node) rpcNodeDirectory(ctx context.Context, _ adminrpc.Empty) ([]adminrpc.DirectoryEntry, error) {
	out := []adminrpc.DirectoryEntry{}
	err := n.store.Scan(store.PresencePrefix(), func(k store.Key, decode func(any) error) error {
		var p store.Presence
		if err := decode(&p); err != nil {
			return err
		}
		out = append(out, adminrpc.DirectoryEntry{
			PeerID:   string(k[len(store.PresencePrefix()):]),
			Roles:    p.Roles,
			Version:  p.Version,
			Addrs:    append([]string{}, p.Addrs...),
			SentAt:   p.SentAt.UTC().Format(time.RFC3339),
			Received: p.Received.UTC().Format(time.RFC3339),
		})
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	return out, nil
}

func (n *Node) rpcNodeRouting(ctx context.Context, _ adminrpc.Empty) (adminrpc.RoutingResult, error) {
	res := adminrpc.RoutingResult{Peers: []string{}}
	for _, p := range n.dht.RoutingTable().ListPeers() {
		res.Peers = append(res.Peers, p.String())
	}
	sort.Strings(res.Peers)
	return res, nil
}
