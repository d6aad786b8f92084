package kex

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

var quiet = slog.New(slog.DiscardHandler)

func pair(t *testing.T) (host.Host, host.Host) {
	t.Helper()
	mn, err := mocknet.FullMeshConnected(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	return mn.Hosts()[0], mn.Hosts()[1]
}

// echoServer answers every message with itself reversed and reports the first error.
func echoServer(t *testing.T, h host.Host) chan error {
	errs := make(chan error, 8)
	srv := NewServer(t.Context(), h, quiet)
	srv.Handle("echo", func(ctx context.Context, s *Session) error {
		for {
			msg, err := s.Recv(ctx, 8<<20)
			if err != nil {
				errs <- err
				return err
			}
			if err := s.Send(ctx, reverse(msg)); err != nil {
				errs <- err
				return err
			}
		}
	})
	return errs
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}

func TestSessionRoundTrips(t *testing.T) {
	a, b := pair(t)
	echoServer(t, b)
	s, err := Dial(t.Context(), a, b.ID(), "echo")
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	defer s.Close()
	if s.RemotePeer() != b.ID() {
		t.Errorf("RemotePeer() = %s, want %s", s.RemotePeer(), b.ID())
	}
	big := make([]byte, 3*MaxFramePayload+7)
	rand.Read(big)
	for _, msg := range [][]byte{[]byte("hello"), {}, big, []byte("again")} {
		if err := s.Send(t.Context(), msg); err != nil {
			t.Fatalf("Send(%d bytes) = %v", len(msg), err)
		}
		got, err := s.Recv(t.Context(), 8<<20)
		if err != nil {
			t.Fatalf("Recv = %v", err)
		}
		if !bytes.Equal(got, reverse(msg)) {
			t.Fatalf("round trip of %d bytes came back wrong (%d bytes)", len(msg), len(got))
		}
	}
	key := s.sendKey
	s.Close()
	if !bytes.Equal(key, make([]byte, 32)) {
		t.Errorf("send key after Close = %x, want zeroes", key)
	}
	if err := s.Send(t.Context(), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
}

func TestReceiverLimit(t *testing.T) {
	a, b := pair(t)
	errs := echoServer(t, b)
	s, err := Dial(t.Context(), a, b.ID(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), make([]byte, 9<<20)); err != nil && !errors.Is(err, network.ErrReset) {
		t.Logf("Send = %v (the server may reset first)", err)
	}
	if err := <-errs; !errors.Is(err, ErrTooLarge) {
		t.Errorf("server Recv of a 9 MiB message with an 8 MiB limit = %v, want ErrTooLarge", err)
	}
}

func TestUnknownPurpose(t *testing.T) {
	a, b := pair(t)
	echoServer(t, b)
	if _, err := Dial(t.Context(), a, b.ID(), "nope"); err == nil {
		t.Errorf("Dial(unknown purpose) = nil error")
	}
}

// impostor answers the handshake signing with a key that is not b's identity.
func impostor(t *testing.T, b host.Host) {
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	b.SetStreamHandler(ID, func(st network.Stream) {
		var hi hello
		if wire.ReadFrame(st, MaxHandshakeMsg, &hi) != nil {
			st.Reset()
			return
		}
		eph, _ := ecdh.X25519().GenerateKey(rand.Reader)
		rep := reply{Eph: eph.PublicKey().Bytes(), Nonce: make([]byte, 32)}
		tr := transcript(hi.Purpose, st.Conn().RemotePeer(), b.ID(), hi.Eph, rep.Eph, hi.Nonce, rep.Nonce)
		rep.Sig, _ = sign(other, sigResponder, tr)
		wire.WriteFrame(st, &rep)
		st.Close()
	})
}

func TestManInTheMiddleIsRefused(t *testing.T) {
	a, b := pair(t)
	impostor(t, b)
	if _, err := Dial(t.Context(), a, b.ID(), "echo"); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Dial to an impostor = %v, want ErrBadSignature", err)
	}
}

func TestInitiatorWithWrongKeyIsRefused(t *testing.T) {
	a, b := pair(t)
	echoServer(t, b)
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	st, err := a.NewStream(t.Context(), b.ID(), ID)
	if err != nil {
		t.Fatal(err)
	}
	eph, _ := ecdh.X25519().GenerateKey(rand.Reader)
	hi := hello{Purpose: "echo", Eph: eph.PublicKey().Bytes(), Nonce: make([]byte, 32)}
	rand.Read(hi.Nonce)
	wire.WriteFrame(st, &hi)
	var rep reply
	if err := wire.ReadFrame(st, MaxHandshakeMsg, &rep); err != nil {
		t.Fatal(err)
	}
	tr := transcript("echo", a.ID(), b.ID(), hi.Eph, rep.Eph, hi.Nonce, rep.Nonce)
	sig, _ := sign(other, sigInitiator, tr)
	wire.WriteFrame(st, &finish{Sig: sig})
	// The server must reset instead of starting a session: the next read fails.
	st.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := wire.ReadRaw(st, 1024, nil); err == nil {
		t.Errorf("server accepted a finish signed by another key")
	}
}

func TestReplayedHelloIsRefused(t *testing.T) {
	a, b := pair(t)
	echoServer(t, b)
	eph, _ := ecdh.X25519().GenerateKey(rand.Reader)
	hi := hello{Purpose: "echo", Eph: eph.PublicKey().Bytes(), Nonce: bytes.Repeat([]byte{7}, 32)}
	send := func() error {
		st, err := a.NewStream(t.Context(), b.ID(), ID)
		if err != nil {
			return err
		}
		defer st.Reset()
		wire.WriteFrame(st, &hi)
		var rep reply
		return wire.ReadFrame(st, MaxHandshakeMsg, &rep)
	}
	if err := send(); err != nil {
		t.Fatalf("first hello = %v, want a reply", err)
	}
	if err := send(); err == nil {
		t.Errorf("replayed hello got a reply, want the stream reset")
	}
}

// rawFrames opens a session and lets the test write hand-made frames to the server.
func rawFrames(t *testing.T) (*Session, chan error) {
	a, b := pair(t)
	errs := echoServer(t, b)
	s, err := Dial(t.Context(), a, b.ID(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	return s, errs
}

func (s *Session) sealed(ctr uint64, msg string) []byte {
	return s.send.Seal(nil, nonce(ctr), append([]byte{1}, msg...), s.ad)
}

func TestHostileFrames(t *testing.T) {
	tests := []struct {
		name  string
		write func(s *Session)
		want  error
	}{
		{"tampered", func(s *Session) {
			f := s.sealed(0, "hi")
			f[3] ^= 1
			wire.WriteRaw(s.st, f)
		}, ErrTampered},
		{"duplicated", func(s *Session) {
			f := s.sealed(0, "hi")
			wire.WriteRaw(s.st, f)
			wire.WriteRaw(s.st, f)
		}, ErrTampered},
		{"reordered", func(s *Session) {
			wire.WriteRaw(s.st, s.sealed(1, "second"))
			wire.WriteRaw(s.st, s.sealed(0, "first"))
		}, ErrTampered},
		{"truncated", func(s *Session) {
			s.st.Write([]byte{100, 1, 2, 3})
			s.st.CloseWrite()
		}, wire.ErrTruncated},
		{"oversized", func(s *Session) {
			var b bytes.Buffer
			wire.WriteRaw(&b, make([]byte, 10))
			raw := b.Bytes()
			s.st.Write([]byte{0xff, 0xff, 0xff, 0x7f}) // 256 MiB length prefix
			s.st.Write(raw)
		}, wire.ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, errs := rawFrames(t)
			tt.write(s)
			select {
			case err := <-errs:
				if !errors.Is(err, tt.want) {
					t.Errorf("server Recv after %s frame = %v, want %v", tt.name, err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("server did not notice the %s frame", tt.name)
			}
		})
	}
}

func FuzzHandshakeMessages(f *testing.F) {
	b, _ := wire.Marshal(&hello{Purpose: "p", Eph: make([]byte, 32), Nonce: make([]byte, 32)})
	f.Add(b)
	b, _ = wire.Marshal(&reply{Eph: make([]byte, 32), Nonce: make([]byte, 32), Sig: []byte{1}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var h hello
		if wire.Unmarshal(b, &h) == nil && h.check() == nil {
			if len(h.Eph) != 32 || len(h.Nonce) != 32 || h.Purpose == "" {
				t.Fatalf("hello.check accepted %+v", h)
			}
		}
		var r reply
		if wire.Unmarshal(b, &r) == nil && r.check() == nil {
			if len(r.Eph) != 32 || len(r.Nonce) != 32 || len(r.Sig) == 0 {
				t.Fatalf("reply.check accepted %+v", r)
			}
		}
		var fin finish
		_ = wire.Unmarshal(b, &fin)
	})
}
