package node

import (
	"fmt"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/fetch"
	"github.com/califusion/califusion/protocols/catalog"
	"github.com/califusion/califusion/protocols/chunks"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
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
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits(cfg)))
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

// resourceLimits are libp2p's default limits scaled to p2p.max_memory_mib and p2p.max_fds, with
// limits of their own for every /califusion protocol and service, for all peers together and
// per peer, so that no protocol can take what the others need and a few peers cannot take a
// protocol's whole share. The chunk server's own caps (fetch.ChunkServing) are the tight ones; the
// resource manager's sit a little above them, so it refuses (cheaply, before the handler runs)
// only what the server would refuse anyway.
func resourceLimits(cfg config.P2P) rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	defaults := limits.Scale(cfg.MaxMemoryMiB<<20, cfg.MaxFDs)
	mem := cfg.MaxMemoryMiB << 20

	// Chunk streams reserve a chunk frame each at ReservationPriorityMedium, which may fill
	// 153/256 of a limit; the slack covers a stream evicted for a fairer share that has not yet
	// released its reservation.
	srv := fetch.ChunkServing(cfg)
	atMedium := func(streams int) rcmgr.LimitVal64 {
		return rcmgr.LimitVal64(int64(streams)*chunks.MaxChunkFrame*256/153 + 1)
	}
	all := srv.MaxStreams + srv.MaxStreamsPerPeer
	perPeer := srv.MaxStreamsPerPeer + 2
	chunksAll := rcmgr.ResourceLimits{StreamsInbound: rcmgr.LimitVal(all), StreamsOutbound: 1024, Streams: rcmgr.LimitVal(all + 1024), Memory: atMedium(all)}
	chunksPeer := rcmgr.ResourceLimits{StreamsInbound: rcmgr.LimitVal(perPeer), StreamsOutbound: 64, Streams: rcmgr.LimitVal(perPeer + 64), Memory: atMedium(perPeer)}

	// Catalog streams reserve one manifest each (64 KiB) and last seconds.
	catalogAll := rcmgr.ResourceLimits{StreamsInbound: 128, StreamsOutbound: 256, Streams: 384, Memory: 32 << 20}
	catalogPeer := rcmgr.ResourceLimits{StreamsInbound: 8, StreamsOutbound: 16, Streams: 24, Memory: 4 << 20}

	// Key-exchange sessions (keys, updates): many peers at once, few per peer.
	kexAll := rcmgr.ResourceLimits{StreamsInbound: 1024, StreamsOutbound: 1024, Streams: 2048, Memory: rcmgr.LimitVal64(mem / 2)}
	kexPeer := rcmgr.ResourceLimits{StreamsInbound: 32, StreamsOutbound: 64, Streams: 96, Memory: rcmgr.LimitVal64(mem / 4)}

	// The DHT keeps one stream or two per peer.
	dhtAll := rcmgr.ResourceLimits{StreamsInbound: 512, StreamsOutbound: 1024, Streams: 1536, Memory: 32 << 20}
	dhtPeer := rcmgr.ResourceLimits{StreamsInbound: 16, StreamsOutbound: 32, Streams: 48, Memory: 4 << 20}

	partial := rcmgr.PartialLimitConfig{
		Service:     map[string]rcmgr.ResourceLimits{chunks.ServiceName: chunksAll, catalog.ServiceName: catalogAll, kex.ServiceName: kexAll},
		ServicePeer: map[string]rcmgr.ResourceLimits{chunks.ServiceName: chunksPeer, catalog.ServiceName: catalogPeer, kex.ServiceName: kexPeer},
		Protocol: map[protocol.ID]rcmgr.ResourceLimits{
			chunks.ID: chunksAll, catalog.ID: catalogAll, kex.ID: kexAll, DHTPrefix + "/kad/1.0.0": dhtAll,
		},
		ProtocolPeer: map[protocol.ID]rcmgr.ResourceLimits{
			chunks.ID: chunksPeer, catalog.ID: catalogPeer, kex.ID: kexPeer, DHTPrefix + "/kad/1.0.0": dhtPeer,
		},
	}
	return partial.Build(defaults)
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
