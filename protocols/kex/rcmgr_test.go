package kex

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// serviceMemory reports what the kex service holds in h's resource manager.
func serviceMemory(t *testing.T, h host.Host) (mem int64, streams int) {
	t.Helper()
	err := h.Network().ResourceManager().ViewService(ServiceName, func(s network.ServiceScope) error {
		st := s.Stat()
		mem, streams = st.Memory, st.NumStreamsInbound
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mem, streams
}

// TestResourceManagerAccounting: accepted streams are attached to the kex service; an idle
// session holds only the handshake's reservation, a session that received a large frame holds
// that frame's buffer, and everything is released when the sessions end.
func TestResourceManagerAccounting(t *testing.T) {
	mk := func() host.Host {
		rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.DefaultLimits.AutoScale()))
		if err != nil {
			t.Fatal(err)
		}
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.ResourceManager(rm))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	a, b := mk(), mk()
	if err := a.Connect(t.Context(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 1)
	srv := NewServer(t.Context(), b, quiet)
	srv.Handle("hold", func(ctx context.Context, s *Session) error {
		for {
			if _, err := s.Recv(ctx, 2<<20); err != nil {
				return err
			}
			got <- struct{}{}
		}
	})
	idle, err := Dial(t.Context(), a, b.ID(), "hold")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if mem, n := serviceMemory(t, b); n != 1 || mem > handshakeMemory {
			return fmt.Errorf("kex service with one idle session: %d streams, %d bytes, want 1 and at most %d", n, mem, handshakeMemory)
		}
		return nil
	})
	busy, err := Dial(t.Context(), a, b.ID(), "hold")
	if err != nil {
		t.Fatal(err)
	}
	if err := busy.Send(t.Context(), make([]byte, MaxFramePayload)); err != nil {
		t.Fatal(err)
	}
	<-got
	if mem, _ := serviceMemory(t, b); mem < MaxFramePayload {
		t.Errorf("kex service memory after a 1 MiB frame = %d, want at least the frame's %d", mem, MaxFramePayload)
	}
	idle.Close()
	busy.Close()
	waitFor(t, 10*time.Second, func() error {
		if mem, n := serviceMemory(t, b); n != 0 || mem != 0 {
			return fmt.Errorf("kex service after the sessions ended: %d streams, %d bytes, want none", n, mem)
		}
		return nil
	})
}
