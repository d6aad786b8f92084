package wire

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

const testProto = "/califusion/test/1.0.0"

func pair(t *testing.T) (client, server host.Host) {
	t.Helper()
	mn, err := mocknet.FullMeshConnected(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	return mn.Hosts()[0], mn.Hosts()[1]
}

// ask sends one frame on a new stream and returns the answer frame, or the error that ended
// the stream.
func ask(t *testing.T, from, to host.Host) (string, error) {
	t.Helper()
	done := make(chan struct{})
	var got string
	var err error
	go func() {
		defer close(done)
		st, e := from.NewStream(t.Context(), to.ID(), testProto)
		if e != nil {
			err = e
			return
		}
		defer st.Close()
		if err = WriteFrame(st, "ping"); err != nil {
			return
		}
		st.CloseWrite()
		err = ReadFrame(st, 64, &got)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("no answer and no reset")
	}
	return got, err
}

// echo answers one frame with "pong".
func echo(served *atomic.Int32) func(network.Stream) error {
	return func(st network.Stream) error {
		served.Add(1)
		var msg string
		if err := ReadFrame(st, 64, &msg); err != nil {
			return err
		}
		return WriteFrame(st, "pong")
	}
}

func TestHandlerSteps(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	tests := []struct {
		name   string
		lim    Limits
		serve  func(*atomic.Int32) func(network.Stream) error
		want   string // the answer; "" for a reset
		served int32  // times serve ran
	}{
		{"served", Limits{Service: "test", Memory: 1024, Timeout: time.Minute}, echo, "pong", 1},
		{"over the rate limit", Limits{Service: "test", Timeout: time.Minute, Allow: func(peer.ID) bool { return false }}, echo, "", 0},
		{"no slot", Limits{Service: "test", Timeout: time.Minute, Admit: func(peer.ID) (func(), error) { return nil, errors.New("full") }}, echo, "", 0},
		{"serve fails", Limits{Service: "test"}, func(n *atomic.Int32) func(network.Stream) error {
			return func(network.Stream) error { n.Add(1); return errors.New("no") }
		}, "", 1},
		{"serve panics", Limits{Service: "test"}, func(n *atomic.Int32) func(network.Stream) error {
			return func(network.Stream) error { n.Add(1); panic("boom") }
		}, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := pair(t)
			var served atomic.Int32
			b.SetStreamHandler(testProto, Handler(tt.lim, quiet, tt.serve(&served)))
			got, err := ask(t, a, b)
			if tt.want != "" && (err != nil || got != tt.want) {
				t.Errorf("answer = %q, %v, want %q", got, err, tt.want)
			}
			if tt.want == "" && err == nil {
				t.Errorf("answer = %q, want the stream reset", got)
			}
			if n := served.Load(); n != tt.served {
				t.Errorf("serve ran %d times, want %d", n, tt.served)
			}
		})
	}
}

// Admit's release runs however the handler ends, and Allow is asked before Admit.
func TestHandlerReleasesSlot(t *testing.T) {
	a, b := pair(t)
	var order []string
	var held atomic.Int32
	lim := Limits{
		Service: "test",
		Allow:   func(peer.ID) bool { order = append(order, "allow"); return true },
		Admit: func(peer.ID) (func(), error) {
			order = append(order, "admit")
			held.Add(1)
			return func() { held.Add(-1) }, nil
		},
	}
	b.SetStreamHandler(testProto, Handler(lim, slog.New(slog.DiscardHandler), func(network.Stream) error {
		order = append(order, "serve")
		panic("boom")
	}))
	if _, err := ask(t, a, b); err == nil {
		t.Errorf("a panicking handler's stream was not reset")
	}
	if n := held.Load(); n != 0 {
		t.Errorf("slots held after the handler panicked = %d, want 0", n)
	}
	if len(order) != 3 || order[0] != "allow" || order[1] != "admit" || order[2] != "serve" {
		t.Errorf("steps = %v, want [allow admit serve]", order)
	}
}
