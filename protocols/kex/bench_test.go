package kex

import (
	"context"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Session throughput against the raw stream it runs on, two TCP+TLS hosts on loopback in one
// run, 64 MiB in 1 MiB messages:
//
//	go test ./protocols/kex -run '^$' -bench Throughput -benchtime 5x
const benchBytes = 64 << 20

func tcpHosts(b *testing.B) (host.Host, host.Host) {
	mk := func() host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close() })
		return h
	}
	x, y := mk(), mk()
	if err := x.Connect(context.Background(), peer.AddrInfo{ID: y.ID(), Addrs: y.Addrs()}); err != nil {
		b.Fatal(err)
	}
	return x, y
}

func BenchmarkThroughputRaw(b *testing.B) {
	x, y := tcpHosts(b)
	done := make(chan struct{})
	y.SetStreamHandler("/bench", func(s network.Stream) { io.Copy(io.Discard, s); s.Close(); done <- struct{}{} })
	msg := make([]byte, 1<<20)
	b.SetBytes(benchBytes)
	for b.Loop() {
		s, err := x.NewStream(context.Background(), y.ID(), "/bench")
		if err != nil {
			b.Fatal(err)
		}
		for range benchBytes / len(msg) {
			s.Write(msg)
		}
		s.CloseWrite()
		<-done
	}
}

func BenchmarkThroughputSession(b *testing.B) {
	x, y := tcpHosts(b)
	done := make(chan struct{})
	srv := NewServer(context.Background(), y, quiet)
	srv.Handle("bench", func(ctx context.Context, s *Session) error {
		for range benchBytes / (1 << 20) {
			if _, err := s.Recv(ctx, 1<<20); err != nil {
				return err
			}
		}
		done <- struct{}{}
		return nil
	})
	msg := make([]byte, 1<<20)
	b.SetBytes(benchBytes)
	for b.Loop() {
		s, err := Dial(context.Background(), x, y.ID(), "bench")
		if err != nil {
			b.Fatal(err)
		}
		for range benchBytes / len(msg) {
			if err := s.Send(context.Background(), msg); err != nil {
				b.Fatal(err)
			}
		}
		<-done
		s.Close()
	}
}
