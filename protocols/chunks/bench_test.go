package chunks

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"testing"

	"github.com/califusion/califusion/node/content"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// The transfer benchmarks compare a Fetch of a 256 MiB model from memory to memory against one
// libp2p stream moving the same bytes, both between two TCP hosts on loopback in the same run:
//
//	go test ./protocols/chunks -run '^$' -bench Transfer -benchtime 3x
const benchChunks = 256

func tcpPair(b *testing.B) (host.Host, host.Host) {
	b.Helper()
	mk := func() host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close() })
		return h
	}
	a, c := mk(), mk()
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: c.ID(), Addrs: c.Addrs()}); err != nil {
		b.Fatal(err)
	}
	return a, c
}

func benchModel(b *testing.B) *model { return benchModelOf(b, benchChunks) }

// benchModelOf packages a random model of n full chunks.
func benchModelOf(b *testing.B, n int) *model {
	plain := make([]byte, n*content.DefaultChunkSize)
	rand.Read(plain)
	key, _ := content.NewKey()
	m := &model{}
	p, err := content.Package(context.Background(), bytes.NewReader(plain), uint64(len(plain)), content.DefaultChunkSize, key, make([]byte, content.SaltSize), 2, func(i uint64, ct []byte) error {
		m.chunks = append(m.chunks, bytes.Clone(ct))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	m.leaves, m.root = p.Leaves, p.Root
	return m
}

func BenchmarkTransferRawStream(b *testing.B) {
	a, c := tcpPair(b)
	done := make(chan struct{})
	c.SetStreamHandler("/bench", func(s network.Stream) { io.Copy(io.Discard, s); s.Close(); done <- struct{}{} })
	buf := make([]byte, content.DefaultChunkSize)
	b.SetBytes(benchChunks * content.DefaultChunkSize)
	for b.Loop() {
		s, err := a.NewStream(context.Background(), c.ID(), "/bench")
		if err != nil {
			b.Fatal(err)
		}
		for range benchChunks {
			s.Write(buf)
		}
		s.CloseWrite()
		<-done
	}
}

func BenchmarkTransferFetch(b *testing.B) {
	a, c := tcpPair(b)
	m := benchModel(b)
	NewServer(c, &source{m: m}, ServerConfig{}, quiet)
	b.SetBytes(benchChunks * content.DefaultChunkSize)
	for b.Loop() {
		err := NewFetcher(a, Config{Window: 8, PerPeer: 2}, quiet).Fetch(context.Background(), Target{
			Model: m.id, Leaves: m.leaves, Missing: all(benchChunks), Put: func(uint64, []byte) error { return nil },
		}, []peer.ID{c.ID()})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeeders fetches a 96 MiB model from one seeder and from three, each seeder's link
// limited to 40 MB/s (mocknet), as when seeders' uplinks rather than the fetcher are the limit:
//
//	go test ./protocols/chunks -run '^$' -bench Seeders -benchtime 3x
func BenchmarkSeeders(b *testing.B) {
	const chunks = 96
	m := benchModelOf(b, chunks)
	for _, seeders := range []int{1, 3} {
		b.Run(fmt.Sprintf("seeders=%d", seeders), func(b *testing.B) {
			mn := mocknet.New()
			b.Cleanup(func() { mn.Close() })
			mn.SetLinkDefaults(mocknet.LinkOptions{Bandwidth: 40e6})
			var hs []host.Host
			for range seeders + 1 {
				h, err := mn.GenPeer()
				if err != nil {
					b.Fatal(err)
				}
				hs = append(hs, h)
			}
			if err := mn.LinkAll(); err != nil {
				b.Fatal(err)
			}
			if err := mn.ConnectAllButSelf(); err != nil {
				b.Fatal(err)
			}
			var ids []peer.ID
			for _, h := range hs[1:] {
				NewServer(h, &source{m: m}, ServerConfig{}, quiet)
				ids = append(ids, h.ID())
			}
			b.SetBytes(chunks * content.DefaultChunkSize)
			for b.Loop() {
				err := NewFetcher(hs[0], Config{Window: 8, PerPeer: 2}, quiet).Fetch(context.Background(), Target{
					Model: m.id, Leaves: m.leaves, Missing: all(chunks), Put: func(uint64, []byte) error { return nil },
				}, ids)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
