package adminrpc

// Method params and results of shared/API.md, shared by the server side (node) and Client.

// NodeInfo is the result of node_info.
type NodeInfo struct {
	PeerID       string   `json:"peer_id"`
	Addrs        []string `json:"addrs"`
	Roles        []string `json:"roles"`
	Version      string   `json:"version"`
	ICPPrincipal string   `json:"icp_principal"`
	ICPAccount   string   `json:"icp_account"`
	Datadir      string   `json:"datadir"`
}

// Peer is one entry of node_peers.
type Peer struct {
	PeerID    string   `json:"peer_id"`
	Addrs     []string `json:"addrs"`
	LatencyMS float64  `json:"latency_ms"`
}

// ConnectParams are the params of node_connect.
type ConnectParams struct {
	Addr string `json:"addr"`
}

// ConnectResult is the result of node_connect.
type ConnectResult struct {
	PeerID string `json:"peer_id"`
}

// DirectoryEntry is one entry of node_directory: a node known from its signed presence
// announcements on gossipsub, connected or not.
type DirectoryEntry struct {
	PeerID   string   `json:"peer_id"`
	Roles    []string `json:"roles"`
	Version  string   `json:"version"`
	Addrs    []string `json:"addrs"`
	SentAt   string   `json:"sent_at"`
	Received string   `json:"received"`
}

// RoutingResult is the result of node_routing: the peers in the DHT routing table.
type RoutingResult struct {
	Peers []string `json:"peers"`
}

// Empty is the params of methods that take none.
type Empty struct{}
