package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/califusion/califusion/node/internal/fsutil"
	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsAddrFile is the datadir file holding the metrics listener's bound host:port while the
// node runs with rpc.metrics_addr set.
const MetricsAddrFile = "metrics.addr"

// initMetrics registers the node's collectors (built in New), with the scrape-time gauges
// reading the services (nodeSources).
func (n *Node) initMetrics() error {
	n.metrics.Observe(metrics.Sources{Catalog: nodeSources{n}, Jobs: nodeSources{n}, Rounds: nodeSources{n}, Peers: nodeSources{n}, Blobs: nodeSources{n}})
	return n.metrics.Register(n.reg)
}

// metricsHandler serves the node's registry.
func (n *Node) metricsHandler() http.Handler {
	return promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{})
}

// startMetrics serves /metrics and /healthz without a token on rpc.metrics_addr, when it is set,
// and writes the bound address to <datadir>/metrics.addr.
func (n *Node) startMetrics(ctx context.Context) error {
	os.Remove(n.dir.Join(MetricsAddrFile))
	if n.cfg.RPC.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.RPC.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen on rpc.metrics_addr %s (is another daemon using it?): %w", n.cfg.RPC.MetricsAddr, err)
	}
	srv := &http.Server{
		Handler:           adminrpc.MetricsHandler(n.metricsHandler()),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	n.metricsAddr = ln.Addr().String()
	if err := fsutil.WriteFileAtomic(n.dir.Join(MetricsAddrFile), []byte(n.metricsAddr+"\n"), 0o600); err != nil {
		ln.Close()
		return err
	}
	n.serve("metrics listener", srv, ln, func() { os.Remove(n.dir.Join(MetricsAddrFile)) })
	n.log.Info("metrics listener", "addr", n.metricsAddr)
	return nil
}

// MetricsAddr returns the metrics listener's bound host:port (empty when rpc.metrics_addr is
// not set, or before Start).
func (n *Node) MetricsAddr() string { return n.metricsAddr }

// setMetricsToken makes the admin listener accept the read-only metrics token for GET /metrics.
func (n *Node) setMetricsToken(api *adminrpc.Server) error {
	tok, err := n.dir.MetricsToken()
	if err != nil {
		return err
	}
	api.SetMetricsToken(tok)
	return nil
}

// MetricsToken loads the read-only metrics token (<datadir>/metrics.token), creating it (0600)
// when the datadir has none yet.
func (d *Datadir) MetricsToken() (string, error) {
	path := d.Join(adminrpc.MetricsTokenFile)
	raw, err := fsutil.ReadSecret(path)
	if errors.Is(err, fs.ErrNotExist) {
		var b [32]byte
		rand.Read(b[:])
		tok := hex.EncodeToString(b[:])
		if err := fsutil.WriteFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", adminrpc.MetricsTokenFile, err)
		}
		return tok, nil
	}
	if err != nil {
		return "", err
	}
	return checkToken(raw, adminrpc.MetricsTokenFile, "delete it and restart the node to get a new one")
}

// nodeSources are what the scrape-time gauges read; a service not started yet reads as nothing.
type nodeSources struct{ n *Node }

func (s nodeSources) Count() int {
	if s.n.catalog == nil {
		return 0
	}
	return s.n.catalog.Count()
}

func (s nodeSources) Active() map[string]int {
	if s.n.jobs == nil {
		return nil
	}
	return s.n.jobs.Active()
}

func (s nodeSources) CountByState() (map[string]int, error) {
	if s.n.rounds == nil {
		return nil, nil
	}
	return s.n.rounds.CountByState()
}

// PeersByRole counts the connected peers by the roles their last presence claimed.
func (s nodeSources) PeersByRole() map[string]int {
	if s.n.host == nil || s.n.presence == nil {
		return nil
	}
	roles := map[string][]string{}
	if dir, err := s.n.presence.Directory(); err == nil {
		for _, e := range dir {
			roles[e.Peer] = e.Roles
		}
	}
	out := map[string]int{"unknown": 0}
	for _, r := range []string{"publisher", "trainer", "coordinator"} {
		out[r] = 0
	}
	for _, p := range s.n.host.Network().Peers() {
		rs, ok := roles[p.String()]
		if !ok || len(rs) == 0 {
			out["unknown"]++
			continue
		}
		for _, r := range rs {
			if _, known := out[r]; known {
				out[r]++
			}
		}
	}
	return out
}

// BlobBytes is the total size of the blob files (the chunk store's own count, as node/storage
// reads it).
func (s nodeSources) BlobBytes() (int64, error) {
	if s.n.chunks == nil { // not started
		return 0, nil
	}
	n, err := s.n.chunks.Usage()
	return int64(n), err
}
