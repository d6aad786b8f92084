package kex

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// mesh returns n connected mocknet hosts.
func mesh(t *testing.T, n int) []host.Host {
	t.Helper()
	mn, err := mocknet.FullMeshConnected(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	return mn.Hosts()
}

// holdServer serves purpose "hold": each session waits for one message and echoes it; ended
// receives each session's end.
func holdServer(t *testing.T, h host.Host, opts ...Option) (*Server, chan error) {
	t.Helper()
	ended := make(chan error, 1024)
	srv := NewServer(t.Context(), h, quiet, opts...)
	srv.Handle("hold", func(ctx context.Context, s *Session) error {
		msg, err := s.Recv(ctx, 1024)
		if err == nil {
			err = s.Send(ctx, msg)
		}
		ended <- err
		return err
	})
	return srv, ended
}

// waitFor polls cond until it returns nil or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// works dials a session, sends a message and checks the echo.
func works(ctx context.Context, from host.Host, to host.Host) error {
	s, err := Dial(ctx, from, to.ID(), "hold")
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Send(ctx, []byte("hi")); err != nil {
		return err
	}
	got, err := s.Recv(ctx, 1024)
	if err != nil {
		return err
	}
	if string(got) != "hi" {
		return fmt.Errorf("echo = %q, want hi", got)
	}
	return nil
}

func TestIdleSessionTimesOut(t *testing.T) {
	hs := mesh(t, 2)
	srv, ended := holdServer(t, hs[1], WithIdleTimeout(100*time.Millisecond), WithMaxSessionsPerPeer(1))
	s, err := Dial(t.Context(), hs[0], hs[1].ID(), "hold")
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	defer s.Close()
	// The caller's ctx has no deadline and the peer sends nothing: the server must give up.
	select {
	case err := <-ended:
		if !errors.Is(err, ErrIdle) {
			t.Errorf("server Recv from an idle peer = %v, want ErrIdle", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server is still waiting for an idle peer")
	}
	waitFor(t, 10*time.Second, func() error {
		if n, _ := srv.Sessions(hs[0].ID()); n != 0 {
			return fmt.Errorf("Sessions(idle peer) = %d, want 0 once it timed out", n)
		}
		return nil
	})
	if err := works(t.Context(), hs[0], hs[1]); err != nil {
		t.Errorf("a new session after the idle one ended = %v, want it served", err)
	}
}

func TestSessionLifetime(t *testing.T) {
	hs := mesh(t, 2)
	_, ended := holdServer(t, hs[1], WithSessionLifetime(100*time.Millisecond))
	s, err := Dial(t.Context(), hs[0], hs[1].ID(), "hold")
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	defer s.Close()
	select {
	case err := <-ended:
		if !errors.Is(err, ErrExpired) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("server Recv past the session's lifetime = %v, want ErrExpired", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a session outlived its lifetime")
	}
}

func TestHandshakeTimeout(t *testing.T) {
	hs := mesh(t, 2)
	srv, _ := holdServer(t, hs[1], WithStreamTimeout(100*time.Millisecond), WithMaxSessionsPerPeer(1))
	st, err := hs[0].NewStream(t.Context(), hs[1].ID(), ID) // and never say Hello
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	st.Write([]byte{1}) // so that the server's handler runs
	// The stalled handshake holds the peer's only slot until the handshake timeout frees it.
	waitFor(t, 20*time.Second, func() error { return works(t.Context(), hs[0], hs[1]) })
	waitFor(t, 10*time.Second, func() error {
		if n, _ := srv.Sessions(hs[0].ID()); n != 0 {
			return fmt.Errorf("Sessions(peer) = %d after its sessions ended, want 0", n)
		}
		return nil
	})
}

// hold opens n sessions from h and keeps them idle until the test ends; it returns how many the
// server accepted.
func hold(t *testing.T, from, to host.Host, n int) int {
	t.Helper()
	ok := 0
	for range n {
		s, err := Dial(t.Context(), from, to.ID(), "hold")
		if err != nil {
			continue
		}
		ok++
		t.Cleanup(func() { s.Reset() })
	}
	return ok
}

func TestPerPeerCap(t *testing.T) {
	hs := mesh(t, 3)
	attacker, server, honest := hs[0], hs[1], hs[2]
	srv, _ := holdServer(t, server, WithMaxSessionsPerPeer(3))
	if got := hold(t, attacker, server, 10); got != 3 {
		t.Errorf("sessions accepted from one peer = %d, want the cap 3", got)
	}
	if n, total := srv.Sessions(attacker.ID()); n != 3 || total != 3 {
		t.Errorf("Sessions(attacker) = %d, %d, want 3, 3", n, total)
	}
	if err := works(t.Context(), honest, server); err != nil {
		t.Errorf("honest peer while another holds its cap = %v, want served", err)
	}
}

func TestTotalCap(t *testing.T) {
	hs := mesh(t, 4)
	server, honest := hs[0], hs[3]
	srv, _ := holdServer(t, server, WithMaxSessionsPerPeer(2), WithMaxSessions(4))
	held := hold(t, hs[1], server, 5) + hold(t, hs[2], server, 5)
	if held != 4 {
		t.Errorf("sessions accepted from two peers = %d, want the total cap 4", held)
	}
	if err := works(t.Context(), honest, server); err == nil {
		t.Errorf("a fifth session past the total cap of 4 was served")
	}
	if _, total := srv.Sessions(honest.ID()); total != 4 {
		t.Errorf("open sessions = %d, want 4", total)
	}
}

func TestHonestPeerServedWhileOthersHoldTheirCaps(t *testing.T) {
	hs := mesh(t, 12)
	server, honest := hs[0], hs[11]
	// Ten peers each try 70 idle sessions (issue 12, attack 3); with the default caps the
	// server keeps 10 × 8 of them and still has room for everyone else.
	srv, _ := holdServer(t, server)
	for _, a := range hs[1:11] {
		hold(t, a, server, 70)
	}
	if _, total := srv.Sessions(honest.ID()); total != 10*MaxSessionsPerPeer {
		t.Errorf("open sessions = %d, want %d", total, 10*MaxSessionsPerPeer)
	}
	if err := works(t.Context(), honest, server); err != nil {
		t.Errorf("honest peer while 10 peers hold 70 sessions each = %v, want served", err)
	}
}

// RemoveHandler stops a purpose being served; Close removes the kex handler and ends the
// sessions in progress, freeing their slots.
func TestRemoveHandlerAndClose(t *testing.T) {
	hs := mesh(t, 2)
	srv, ended := holdServer(t, hs[1])
	srv.Handle("other", func(ctx context.Context, s *Session) error { return nil })
	srv.RemoveHandler("other")
	if _, err := Dial(t.Context(), hs[0], hs[1].ID(), "other"); err == nil {
		t.Errorf("Dial(removed purpose) = nil error, want the session refused")
	}
	s, err := Dial(t.Context(), hs[0], hs[1].ID(), "hold")
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	defer s.Close()
	srv.Close()
	srv.Close() // idempotent
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("session in progress when the server closed ended with %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a session outlived its server's Close")
	}
	waitFor(t, 10*time.Second, func() error {
		if _, total := srv.Sessions(hs[0].ID()); total != 0 {
			return fmt.Errorf("open sessions after Close = %d, want 0", total)
		}
		return nil
	})
	if err := works(t.Context(), hs[0], hs[1]); err == nil {
		t.Errorf("a session after the server's Close was served")
	}
}

// A handler that panics is reset and its slot freed; the server goes on serving.
func TestHandlerPanicFreesSlot(t *testing.T) {
	hs := mesh(t, 2)
	srv, _ := holdServer(t, hs[1], WithMaxSessionsPerPeer(1))
	srv.Handle("panic", func(ctx context.Context, s *Session) error { panic("boom") })
	s, err := Dial(t.Context(), hs[0], hs[1].ID(), "panic")
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	if _, err := s.Recv(t.Context(), 1024); err == nil {
		t.Errorf("Recv from a panicked handler = nil error, want the session reset")
	}
	s.Close()
	waitFor(t, 10*time.Second, func() error { return works(t.Context(), hs[0], hs[1]) })
}
