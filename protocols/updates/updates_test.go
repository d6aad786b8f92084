package updates

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

var quiet = slog.New(slog.DiscardHandler)

func pair(t testing.TB) (host.Host, host.Host) {
	t.Helper()
	mn, err := mocknet.FullMeshConnected(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	return mn.Hosts()[0], mn.Hosts()[1]
}

// coordinator serves submissions on b: samples must be 1..100, round "r1"; accepted bodies are
// copied into got.
type testCoordinator struct {
	*Coordinator
	accepted atomic.Int32
	got      []byte
	mode     os.FileMode
}

func serveCoordinator(t testing.TB, b host.Host, maxSize uint64) *testCoordinator {
	t.Helper()
	tc := &testCoordinator{}
	tc.Coordinator = &Coordinator{
		Dir: filepath.Join(t.TempDir(), "incoming"), MaxSize: maxSize,
		Decide: func(ctx context.Context, from peer.ID, s *Statement) *Receipt {
			switch {
			case s.Round != "r1":
				return &Receipt{Code: 1001, Message: "no such round"}
			case s.Samples == 0 || s.Samples > 100:
				return &Receipt{Code: 1007, Message: "update rejected", Reason: "sample_count"}
			}
			return nil
		},
		Accept: func(ctx context.Context, from peer.ID, u *Upload) *Receipt {
			tc.accepted.Add(1)
			fi, err := os.Stat(u.Path)
			if err != nil {
				return &Receipt{Code: -32603, Message: err.Error()}
			}
			tc.mode = fi.Mode().Perm()
			tc.got, _ = os.ReadFile(u.Path)
			if _, err := u.Header.Open(from); err != nil {
				return &Receipt{Code: 1005, Message: err.Error()}
			}
			return &Receipt{Norm: 1.5, Anchor: "califusion/anchor/v1/x"}
		},
	}
	srv := kex.NewServer(t.Context(), b, quiet)
	NewServer(srv, tc.Coordinator)
	return tc
}

func submitBytes(ctx context.Context, a host.Host, to peer.ID, round string, samples uint64, body []byte) (*Receipt, error) {
	sum := sha256.Sum256(body)
	return Submit(ctx, a, to, round, samples, sum[:], uint64(len(body)), bytes.NewReader(body))
}

func TestSubmitOverSession(t *testing.T) {
	a, b := pair(t)
	tc := serveCoordinator(t, b, 8<<20)
	update := make([]byte, 3<<20+5) // several body messages
	rand.Read(update)
	r, err := submitBytes(t.Context(), a, b.ID(), "r1", 10, update)
	if err != nil || r.Norm != 1.5 || r.Anchor == "" {
		t.Fatalf("Submit = %+v, %v, want the coordinator's receipt", r, err)
	}
	if !bytes.Equal(tc.got, update) || tc.mode != 0o600 {
		t.Errorf("spooled body = %d bytes, mode %v, want the %d bytes sent, mode 0600", len(tc.got), tc.mode, len(update))
	}
	if left, _ := os.ReadDir(tc.Dir); len(left) != 0 {
		t.Errorf("spool directory after the submission holds %d files, want none", len(left))
	}
	tests := []struct {
		name    string
		round   string
		samples uint64
		size    int
		code    int
		reason  string
	}{
		{"unknown round", "nope", 10, 100, 1001, ""},
		{"zero samples", "r1", 0, 100, 1007, "sample_count"},
		{"too many samples", "r1", 1 << 40, 100, 1007, "sample_count"},
		{"over the size limit", "r1", 10, 9 << 20, 1007, "size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := submitBytes(t.Context(), a, b.ID(), tt.round, tt.samples, make([]byte, tt.size))
			var refusal *Error
			if !errors.As(err, &refusal) || refusal.Code != tt.code || refusal.Reason != tt.reason {
				t.Errorf("Submit(%s) = %v, want an *Error with code %d, reason %q", tt.name, err, tt.code, tt.reason)
			}
		})
	}
	if n := tc.accepted.Load(); n != 1 {
		t.Errorf("Accept ran %d times, want once (refusals never reach it)", n)
	}
}

// rawSubmit is a hostile trainer: it sends hdr, then body messages without waiting for the
// coordinator's answer, and returns that answer.
func rawSubmit(t *testing.T, a host.Host, b peer.ID, hdr *Header, body [][]byte) (*Receipt, error) {
	t.Helper()
	s, err := kex.Dial(t.Context(), a, b, PurposeSubmit)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw, _ := wire.Marshal(hdr)
	if err := s.Send(t.Context(), raw); err != nil {
		return nil, err
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for _, m := range body {
			if s.Send(t.Context(), m) != nil {
				return
			}
		}
	}()
	r, err := receive(t.Context(), s, b)
	if err == nil && r.Go {
		r, err = receive(t.Context(), s, b)
	}
	s.Reset()
	<-sent
	return r, err
}

func header(t *testing.T, a host.Host, b peer.ID, round string, samples uint64, body []byte, size uint64) *Header {
	t.Helper()
	sum := sha256.Sum256(body)
	h, err := Sign(a.Peerstore().PrivKey(a.ID()), &Statement{Round: round, Samples: samples, SHA256: sum[:], Size: size, Trainer: a.ID().String(), Coordinator: b.String()})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRefusedHeaderBodyNeverRead(t *testing.T) {
	a, b := pair(t)
	tc := serveCoordinator(t, b, 1<<30)
	body := make([][]byte, 64) // 64 MiB pushed right behind the header
	for i := range body {
		body[i] = make([]byte, BodyChunk)
	}
	_, err := rawSubmit(t, a, b.ID(), header(t, a, b.ID(), "nope", 10, nil, 64<<20), body)
	var refusal *Error
	if !errors.As(err, &refusal) || refusal.Code != 1001 {
		t.Fatalf("submission for an unknown round = %v, want refusal 1001", err)
	}
	count, read := tc.Refusals()
	if count != 1 || read > MaxHeader {
		t.Errorf("Refusals() = %d, %d bytes read, want 1 refusal after at most %d bytes", count, read, MaxHeader)
	}
	if _, err := os.Stat(tc.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the spool directory exists after a refusal (%v): the body was read", err)
	}
}

func TestHostileBodies(t *testing.T) {
	a, b := pair(t)
	tc := serveCoordinator(t, b, 1<<20)
	good := []byte("safetensors, trust me")
	tests := []struct {
		name string
		hdr  *Header
		body [][]byte
		code int // 0: the session is reset without a receipt
	}{
		{"body longer than declared", header(t, a, b.ID(), "r1", 10, good, uint64(len(good))), [][]byte{append(good, make([]byte, 4096)...)}, 0},
		{"hash mismatch", header(t, a, b.ID(), "r1", 10, good, uint64(len(good))), [][]byte{bytes.ToUpper(good)}, 1005},
		{"empty body message", header(t, a, b.ID(), "r1", 10, good, uint64(len(good))), [][]byte{{}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rawSubmit(t, a, b.ID(), tt.hdr, tt.body)
			var refusal *Error
			switch {
			case tt.code == 0 && (err == nil || errors.As(err, &refusal)):
				t.Errorf("%s = %v, want the session reset", tt.name, err)
			case tt.code != 0 && (!errors.As(err, &refusal) || refusal.Code != tt.code):
				t.Errorf("%s = %v, want refusal %d", tt.name, err, tt.code)
			}
		})
	}
	if n := tc.accepted.Load(); n != 0 {
		t.Errorf("Accept ran %d times for hostile bodies, want never", n)
	}
	waitFor(t, func() error {
		if left, _ := os.ReadDir(tc.Dir); len(left) != 0 {
			return errors.New("spooled files of refused bodies remain")
		}
		return nil
	})
}

func waitFor(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for err := cond(); err != nil; err = cond() {
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestForgedStatements(t *testing.T) {
	a, b := pair(t)
	serveCoordinator(t, b, 1<<20)
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	otherID, _ := peer.IDFromPrivateKey(other)
	sum := sha256.Sum256([]byte("x"))
	st := Statement{Round: "r1", Samples: 10, SHA256: sum[:], Size: 1, Trainer: a.ID().String(), Coordinator: b.ID().String()}
	byOther, _ := Sign(other, &st) // a's name, another key
	st2 := st
	st2.Trainer = otherID.String()
	naming, _ := Sign(a.Peerstore().PrivKey(a.ID()), &st2) // a's key, another name
	st3 := st
	st3.Coordinator = otherID.String()
	elsewhere, _ := Sign(a.Peerstore().PrivKey(a.ID()), &st3) // meant for another coordinator
	for name, tt := range map[string]struct {
		h    *Header
		code int
	}{"signed by another key": {byOther, 1005}, "naming another trainer": {naming, 1005}, "for another coordinator": {elsewhere, -32602}} {
		_, err := rawSubmit(t, a, b.ID(), tt.h, [][]byte{[]byte("x")})
		var refusal *Error
		if !errors.As(err, &refusal) || refusal.Code != tt.code {
			t.Errorf("header %s = %v, want refusal %d", name, err, tt.code)
		}
	}
}

// FuzzHeader decodes arbitrary first messages as a coordinator does.
func FuzzHeader(f *testing.F) {
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	id, _ := peer.IDFromPrivateKey(key)
	sum := sha256.Sum256([]byte("u"))
	h, _ := Sign(key, &Statement{Round: "r", Samples: 3, SHA256: sum[:], Size: 1, Trainer: id.String(), Coordinator: id.String()})
	good, _ := wire.Marshal(h)
	f.Add(good)
	f.Add(h.Statement)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		if wire.Unmarshal(b, &h) != nil {
			return
		}
		s, err := h.Open(id)
		if err != nil {
			return
		}
		if s.Trainer != id.String() || s.Check() != nil {
			t.Fatalf("Open accepted %+v for %s", s, id)
		}
	})
}

// FuzzStatement decodes arbitrary statements.
func FuzzStatement(f *testing.F) {
	sum := sha256.Sum256([]byte("u"))
	good, _ := wire.Marshal(&Statement{Round: "r", Samples: 3, SHA256: sum[:], Size: 1, Trainer: "x", Coordinator: "y"})
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Statement
		if wire.Unmarshal(b, &s) != nil || s.Check() != nil {
			return
		}
		if len(s.SHA256) != 32 || s.Size == 0 || s.Round == "" {
			t.Fatalf("Check accepted %+v", s)
		}
	})
}

// FuzzReceipt decodes arbitrary answers as a trainer does.
func FuzzReceipt(f *testing.F) {
	good, _ := wire.Marshal(&Receipt{Code: 1007, Reason: "norm", Norm: 3})
	f.Add(good)
	goAhead, _ := wire.Marshal(&Receipt{Go: true})
	f.Add(goAhead)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Receipt
		if wire.Unmarshal(b, &r) != nil {
			return
		}
		if _, err := wire.Marshal(&r); err != nil {
			t.Fatalf("re-encode a decoded receipt: %v", err)
		}
	})
}

// NewServer serves the round query when Round is set, and Close removes every purpose it
// registered.
func TestServerRoundQueryAndClose(t *testing.T) {
	a, b := pair(t)
	srv := kex.NewServer(t.Context(), b, quiet)
	var asked peer.ID
	us := NewServer(srv, &Coordinator{
		Round: func(ctx context.Context, from peer.ID, q *Query) *Receipt {
			asked = from
			if q.Round != "r1" {
				return &Receipt{Code: 1001, Message: "no such round"}
			}
			return &Receipt{Round: []byte("state")}
		},
	})
	r, err := Request(t.Context(), a, b.ID(), PurposeRound, &Query{Round: "r1"})
	if err != nil || string(r.Round) != "state" || asked != a.ID() {
		t.Fatalf("Request(round r1) = %+v, %v (asked by %s), want the round from %s", r, err, asked, a.ID())
	}
	var refusal *Error
	if _, err := Request(t.Context(), a, b.ID(), PurposeRound, &Query{Round: "nope"}); !errors.As(err, &refusal) || refusal.Code != 1001 {
		t.Errorf("Request(round nope) = %v, want an *Error with code 1001", err)
	}
	if _, err := Request(t.Context(), a, b.ID(), PurposeRound, map[int]string{9: "x"}); !errors.As(err, &refusal) || refusal.Code != -32602 {
		t.Errorf("Request(malformed query) = %v, want code -32602", err)
	}
	// Without Decide and Accept, submissions are not served.
	if _, err := submitBytes(t.Context(), a, b.ID(), "r1", 10, []byte("update")); err == nil || errors.As(err, &refusal) {
		t.Errorf("Submit to a server without a submission handler = %v, want the session refused", err)
	}
	us.Close()
	us.Close() // idempotent
	if _, err := Request(t.Context(), a, b.ID(), PurposeRound, &Query{Round: "r1"}); err == nil {
		t.Errorf("Request(round) after the server's Close = nil error, want the purpose unserved")
	}
}
