package node

import (
	"github.com/califusion/califusion/node/fetch"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/protocols/catalog"
	"github.com/califusion/califusion/protocols/chunks"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

func TestPreferRanker(t *testing.T) {
	quic := ma.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1")
	tcp := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	for _, c := range []struct {
		prefer      string
		first, then ma.Multiaddr
	}{{"tcp", tcp, quic}, {"quic", quic, tcp}} {
		got := preferRanker(c.prefer)([]ma.Multiaddr{quic, tcp})
		if len(got) != 2 || !got[0].Addr.Equal(c.first) || got[0].Delay != 0 || !got[1].Addr.Equal(c.then) || got[1].Delay < fallbackDelay {
			t.Errorf("prefer %s: ranked %v, want %s at once and %s after %v", c.prefer, got, c.first, c.then, fallbackDelay)
		}
	}
	if got := preferRanker("tcp")([]ma.Multiaddr{quic}); len(got) != 1 || got[0].Delay != 0 {
		t.Errorf("a peer with only QUIC is dialled at once: %v", got)
	}
}

func TestResourceLimitsPerProtocol(t *testing.T) {
	small, big := config.Default().P2P, config.Default().P2P
	big.MaxMemoryMiB = 4 * small.MaxMemoryMiB
	for _, p := range []config.P2P{small, big} {
		srv := fetch.ChunkServing(p)
		lim := resourceLimits(p).ToPartialLimitConfig()
		for _, l := range []rcmgr.ResourceLimits{lim.Protocol[chunks.ID], lim.Service[chunks.ServiceName]} {
			if int(l.StreamsInbound) != srv.MaxStreams+srv.MaxStreamsPerPeer {
				t.Errorf("max_memory_mib %d: chunks inbound streams = %d, want the server's %d + %d", p.MaxMemoryMiB, l.StreamsInbound, srv.MaxStreams, srv.MaxStreamsPerPeer)
			}
			// The server's streams, each reserving a chunk frame at medium priority, fit.
			if usable := int64(l.Memory) * 153 / 256; usable < int64(srv.MaxStreams)*chunks.MaxChunkFrame {
				t.Errorf("max_memory_mib %d: chunks memory %d leaves %d at medium priority, want room for %d frames", p.MaxMemoryMiB, l.Memory, usable, srv.MaxStreams)
			}
		}
		for _, id := range []protocol.ID{chunks.ID, catalog.ID, kex.ID, DHTPrefix + "/kad/1.0.0"} {
			peer, ok := lim.ProtocolPeer[id]
			if !ok || peer.StreamsInbound <= 0 || peer.StreamsInbound >= lim.Protocol[id].StreamsInbound {
				t.Errorf("%s: per-peer inbound streams %d of %d in all, want a per-peer limit below the total", id, peer.StreamsInbound, lim.Protocol[id].StreamsInbound)
			}
		}
	}
	if s, b := fetch.ChunkServing(small).MaxStreams, fetch.ChunkServing(big).MaxStreams; b <= s {
		t.Errorf("chunk streams served at %d MiB = %d, at %d MiB = %d; want more with more memory", small.MaxMemoryMiB, s, big.MaxMemoryMiB, b)
	}
}

// bigChunks serves one 1 MiB chunk of any model and counts the reads.
type bigChunks struct{ reads atomic.Int64 }

func (b *bigChunks) Leaves([32]byte) ([]byte, error) { return nil, chunks.ErrUnknownModel }

func (b *bigChunks) ReadChunk(_ [32]byte, _ uint64, _ []byte) ([]byte, error) {
	b.reads.Add(1)
	return make([]byte, 1<<20), nil
}

// TestChunkStreamsCappedPerPeer: on a real host, one peer opening far more chunk streams than
// the per-peer cap gets exactly the cap served; the rest are reset before their request is read.
func TestChunkStreamsCappedPerPeer(t *testing.T) {
	cfg := config.Default().P2P
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	key, _, _ := crypto.GenerateEd25519Key(nil)
	h, err := newHost(cfg, key, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	src := &bigChunks{}
	srv := fetch.ChunkServing(cfg)
	chunks.NewServer(h, src, srv, slog.New(slog.DiscardHandler))
	a, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.Connect(t.Context(), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	const opened = 20
	req := &chunks.Request{Model: make([]byte, 32), Indices: make([]uint64, chunks.MaxWindow)}
	var streams []network.Stream
	for range opened {
		st, err := a.NewStream(t.Context(), h.ID(), chunks.ID)
		if err != nil {
			continue // refused by the resource manager at negotiation
		}
		if wire.WriteFrame(st, req) != nil {
			st.Reset()
			continue
		}
		streams = append(streams, st)
	}
	served := 0
	for _, st := range streams {
		st.SetReadDeadline(time.Now().Add(20 * time.Second))
		var b [1]byte
		if _, err := io.ReadFull(st, b[:]); err == nil {
			served++
		}
	}
	if served != srv.MaxStreamsPerPeer {
		t.Errorf("%d of %d streams from one peer were served, want the per-peer cap %d", served, opened, srv.MaxStreamsPerPeer)
	}
	if got := src.reads.Load(); got > int64(srv.MaxStreamsPerPeer) {
		t.Errorf("the refused streams read %d chunks from disk, want none beyond the %d served", got-int64(srv.MaxStreamsPerPeer), srv.MaxStreamsPerPeer)
	}
	for _, st := range streams {
		st.Reset()
	}
}
