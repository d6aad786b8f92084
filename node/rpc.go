package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/internal/fsutil"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The rpc*.go files are the admin API's adapters: each method parses its params, calls one
// service method and maps the service's errors to API codes. No other file of node/ knows the
// admin API.

// rpcServer is the admin API's HTTP server and the address it is bound to.
type rpcServer struct {
	srv  *http.Server
	addr string
}

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
	n.registerStorageRPC(s)
	n.registerJobRPC(s)
	n.registerLogRPC(s)
	n.registerTrainingRPC(s)
	n.registerEscrowRPC(s)
	n.registerCampaignRPC(s)
}

func (n *Node) startRPC(ctx context.Context) error {
	ln, err := net.Listen("tcp", n.cfg.RPC.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (is another daemon using it? set rpc.addr or --rpc-addr): %w", n.cfg.RPC.Addr, err)
	}
	api := adminrpc.NewServer(n.token, n.log.With("subsys", "rpc"), promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{}), n.reg)
	if err := n.setMetricsToken(api); err != nil {
		return err
	}
	n.registerRPC(api)
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       n.cfg.RPC.ReadTimeout.Duration,
		WriteTimeout:      n.cfg.RPC.WriteTimeout.Duration,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	n.rpc = &rpcServer{srv: srv, addr: ln.Addr().String()}
	n.serve("admin rpc", srv, ln, n.removeRPCAddr)
	return nil
}

// writeRPCAddr writes <datadir>/rpc.addr: its presence means the node is ready.
func (n *Node) writeRPCAddr() error {
	return fsutil.WriteFileAtomic(n.dir.Join(adminrpc.AddrFile), []byte(n.rpc.addr+"\n"), 0o600)
}

func (n *Node) removeRPCAddr() { os.Remove(n.dir.Join(adminrpc.AddrFile)) }

// newToken writes a new admin RPC bearer token into datadir dir (0600).
func newToken(dir string, tok []byte) error {
	return fsutil.WriteFileAtomic(filepath.Join(dir, adminrpc.TokenFile), []byte(hex.EncodeToString(tok)+"\n"), 0o600)
}

// Token loads the admin RPC bearer token.
func (d *Datadir) Token() (string, error) {
	raw, err := fsutil.ReadSecret(d.Join(adminrpc.TokenFile))
	if err != nil {
		return "", err
	}
	return checkToken(raw, adminrpc.TokenFile, "delete it and run `califusiond init` in a new datadir")
}

// checkToken returns a token file's token, refusing one too short to be a secret (fix says what
// to do about it).
func checkToken(raw []byte, name, fix string) (string, error) {
	tok := strings.TrimSpace(string(raw))
	if len(tok) < 32 {
		return "", fmt.Errorf("%s is too short to be a token: %s", name, fix)
	}
	return tok, nil
}

// modelID turns a model_id parameter into a ModelID: 64 hex digits, or a unique prefix of at
// least catalog.MinPrefix of a model in the catalog (an ambiguous one lists the matches).
func (n *Node) modelID(s string) (content.ModelID, error) {
	return n.catalog.ModelID(s)
}

// lookup returns the catalog entry a model_id parameter names, resolving a full ID this node
// has not seen from the network; a model nobody knows is a not_found error.
func (n *Node) lookup(ctx context.Context, s string) (*catalog.Record, error) {
	return n.catalog.Lookup(ctx, s)
}

// lookupLocal returns the catalog entry a model_id parameter names, without asking the network:
// for verbs about what this node holds (model rm, model pin).
func (n *Node) lookupLocal(s string) (*catalog.Record, error) {
	id, err := n.modelID(s)
	if err != nil {
		return nil, err
	}
	rec, err := n.catalog.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, adminrpc.Errorf(adminrpc.CodeNotFound, "model %s is not in this node's catalog", s)
	}
	return rec, err
}

func (n *Node) rpcNodeInfo(ctx context.Context, _ adminrpc.Empty) (adminrpc.NodeInfo, error) {
	principal := n.icpID.Sender().Encode() // the PEM's account when one is set: the one that pays
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
		ICPAccountID:  icp.Account{Owner: n.icpID.Sender()}.ID().String(),
		ICPKeyKind:    icp.KeyKind(n.icpID),
		ICPLedgerKind: n.ledger.Kind(),
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
	entries, err := n.presence.Directory()
	if err != nil {
		return nil, err
	}
	out := []adminrpc.DirectoryEntry{}
	for _, e := range entries {
		out = append(out, adminrpc.DirectoryEntry{
			PeerID:   e.Peer,
			Roles:    e.Roles,
			Version:  e.Version,
			Addrs:    append([]string{}, e.Addrs...),
			SentAt:   e.SentAt.UTC().Format(time.RFC3339),
			Received: e.Received.UTC().Format(time.RFC3339),
		})
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
