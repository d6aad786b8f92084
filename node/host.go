package node

import (
	"fmt"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// newHost builds the libp2p host: TCP and QUIC, TLS and Noise in the configured order, yamux, a
// connection manager and resource-manager limits scaled to the configured memory and descriptors.
func newHost(cfg config.P2P, key crypto.PrivKey, reg prometheus.Registerer) (host.Host, error) {
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(cfg.ConnGrace.Duration))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.Scale(cfg.MaxMemoryMiB<<20, cfg.MaxFDs)))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(cfg.Listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.PrometheusRegisterer(reg),
		libp2p.Ping(true),
		libp2p.SwarmOpts(swarm.WithDialRanker(preferRanker(cfg.PreferTransport))),
	}
	for _, s := range cfg.Security {
		switch s {
		case "tls":
			opts = append(opts, libp2p.Security(libp2ptls.ID, libp2ptls.New))
		case "noise":
			opts = append(opts, libp2p.Security(noise.ID, noise.New))
		}
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	return h, nil
}

// fallbackDelay is how long a dial waits for the preferred transport before trying the other.
const fallbackDelay = 250 * time.Millisecond

// preferRanker dials the preferred transport's addresses first (ranked among themselves as
// go-libp2p's default ranker does) and the others fallbackDelay later. libp2p's default prefers
// QUIC; on our bulk transfers TCP moves 2–3× more per CPU second (BENCHMARKS.md).
func preferRanker(prefer string) network.DialRanker {
	return func(addrs []ma.Multiaddr) []network.AddrDelay {
		var first, rest []ma.Multiaddr
		for _, a := range addrs {
			_, err := a.ValueForProtocol(ma.P_QUIC_V1)
			if isQUIC := err == nil; isQUIC == (prefer == "quic") {
				first = append(first, a)
			} else {
				rest = append(rest, a)
			}
		}
		out := swarm.DefaultDialRanker(first)
		delay := time.Duration(0)
		if len(first) > 0 {
			delay = fallbackDelay
		}
		for _, d := range swarm.DefaultDialRanker(rest) {
			d.Delay += delay
			out = append(out, d)
		}
		return out
	}
}
