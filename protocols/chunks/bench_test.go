package chunks

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"

	"github.com/califusion/califusion/node/content"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
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

func benchModel(b *testing.B) *model {
	plain := make([]byte, benchChunks*content.DefaultChunkSize)
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
	Register(c, &source{m: m}, quiet)
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
