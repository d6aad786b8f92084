package kex

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// fakeStream is an in-memory network.Stream: reads come from a fixed byte string, writes are
// kept, Reset makes every later read and write fail. Methods a session does not use are left to
// the embedded nil interface (calling one panics, which a fuzz run reports).
type fakeStream struct {
	network.Stream
	mu    sync.Mutex
	r     *bytes.Reader
	w     bytes.Buffer
	reset bool
}

var errFakeReset = errors.New("stream reset")

func (s *fakeStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reset {
		return 0, errFakeReset
	}
	return s.r.Read(p)
}

func (s *fakeStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reset {
		return 0, errFakeReset
	}
	return s.w.Write(p)
}

func (s *fakeStream) Reset() error                                 { s.mu.Lock(); s.reset = true; s.mu.Unlock(); return nil }
func (s *fakeStream) ResetWithError(network.StreamErrorCode) error { return s.Reset() }
func (s *fakeStream) Close() error                                 { return nil }
func (s *fakeStream) CloseRead() error                             { return nil }
func (s *fakeStream) CloseWrite() error                            { return nil }
func (s *fakeStream) SetDeadline(time.Time) error                  { return nil }
func (s *fakeStream) SetReadDeadline(time.Time) error              { return nil }
func (s *fakeStream) SetWriteDeadline(time.Time) error             { return nil }

// frameSealer encrypts frames as an authenticated initiator does (doc.go, "Frames"), so the
// fuzzer can send frames that open but break the framing rules.
type frameSealer struct {
	aead cipher.AEAD
	ad   []byte
	ctr  uint64
}

func (f *frameSealer) seal(plain []byte) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[4:], f.ctr)
	f.ctr++
	ct := f.aead.Seal(nil, n, plain, f.ad)
	return append(binary.AppendUvarint(nil, uint64(len(ct))), ct...)
}

// keyPair is one handshake's ephemeral keys, transcript and initiator-to-responder frame key.
type keyPair struct {
	eI, eR *ecdh.PrivateKey
	tr     []byte
	aead   cipher.AEAD
}

func newKeyPair(t testing.TB) *keyPair {
	eI, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	eR, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tr := bytes.Repeat([]byte{7}, 32)
	shared, err := eI.ECDH(eR.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	k, err := hkdf.Key(sha256.New, shared, tr, "califusion/kex/v1 I->R", 32)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := aes.NewCipher(k)
	g, _ := cipher.NewGCM(b)
	return &keyPair{eI: eI, eR: eR, tr: tr, aead: g}
}

// responder returns a fresh responder session reading from a fake stream, and a sealer at
// counter 0 holding the initiator's key.
func (k *keyPair) responder(t testing.TB) (*Session, *frameSealer, *fakeStream) {
	st := &fakeStream{r: bytes.NewReader(nil)}
	s, err := newSession(st, "", "fuzz", k.eR, k.eI.PublicKey().Bytes(), k.tr, false)
	if err != nil {
		t.Fatal(err)
	}
	return s, &frameSealer{aead: k.aead, ad: k.tr}, st
}

// script turns fuzz bytes into the stream a hostile but authenticated initiator writes, and
// the messages an honest receiver must deliver from it (those completed before the first frame
// that breaks a rule).
func script(t testing.TB, ops []byte, sealer *frameSealer) (stream []byte, want [][]byte) {
	var cur []byte
	valid := true
	var last []byte
	next := func() byte {
		if len(ops) == 0 {
			return 0
		}
		b := ops[0]
		ops = ops[1:]
		return b
	}
	after, big := 0, false
	for len(ops) > 0 && after < 4 { // a few frames past the first bad one are enough
		if !valid {
			after++
		}
		var frame []byte
		switch op := next(); op % 7 {
		case 0, 1: // a sealed frame: flag byte, up to 4 KiB of payload
			flag := next() % 3
			n := int(next())<<4 | int(next()&0xf)
			payload := bytes.Repeat([]byte{next()}, n)
			frame = sealer.seal(append([]byte{flag}, payload...))
			if valid && flag <= 1 {
				cur = append(cur, payload...)
				if flag == 1 {
					want, cur = append(want, cur), nil
				}
			} else {
				valid = false
			}
		case 2: // a sealed frame with no flag byte
			frame = sealer.seal(nil)
			valid = false
		case 3: // the previous frame again (a replay)
			frame = last
			if last != nil {
				valid = false
			}
		case 4: // a frame that is skipped (the counter moves on, the receiver's does not)
			sealer.seal([]byte{1})
			valid = false
		case 5: // unencrypted bytes behind a length prefix, possibly lying about the length
			n := int(next())
			frame = append(binary.AppendUvarint(nil, uint64(n)+uint64(next()%2)<<40), bytes.Repeat([]byte{next()}, n)...)
			valid = false
		case 6: // a sealed frame over the frame cap
			if next()%8 == 0 && !big {
				big = true
				frame = sealer.seal(make([]byte, MaxFramePayload+2))
				valid = false
			}
		}
		if frame != nil {
			last = frame
			stream = append(stream, frame...)
		}
	}
	return stream, want
}

// FuzzRecvFrames feeds Session.Recv the frames a hostile initiator (one holding the session
// keys) can write: wrong flags, empty, replayed, skipped, unencrypted, oversized frames, and
// messages over the receiver's limit. Recv must never panic, never return more than its limit,
// return exactly the messages the initiator completed in order, and stop at the first frame
// that breaks a rule.
func FuzzRecvFrames(f *testing.F) {
	f.Add(uint16(100), []byte{0, 1, 0, 5, 'a', 0, 0, 0, 3, 'b', 1, 1, 0, 1, 'c'})
	f.Add(uint16(10), []byte{0, 1, 1, 0, 'x'}) // a message of 16 bytes over a 10-byte limit
	f.Add(uint16(1000), []byte{0, 1, 0, 1, 'a', 3})
	f.Add(uint16(1000), []byte{0, 2, 0, 1, 'a', 0, 1, 0, 1, 'b'})  // flag 2, then a last frame
	f.Add(uint16(15), []byte{0, 1, 1, 0, 'x'})                     // 16 bytes, one over the limit
	f.Add(uint16(16), []byte{0, 0, 1, 0, 'x', 2, 0, 1, 0, 1, 'y'}) // an empty frame mid-message
	f.Add(uint16(1000), []byte{5, 4, 1, 'z', 0, 1, 0, 1, 'a'})
	f.Add(uint16(1000), []byte{6, 0})
	f.Add(uint16(0), []byte{0, 1, 0, 0, 0, 0, 1, 0, 0, 0})
	keys := newKeyPair(f)
	f.Fuzz(func(t *testing.T, max uint16, ops []byte) {
		if len(ops) > 4096 {
			return
		}
		s, sealer, st := keys.responder(t)
		stream, want := script(t, ops, sealer)
		st.r = bytes.NewReader(stream)
		limit := int(max)
		var got [][]byte
		for i := 0; ; i++ {
			msg, err := s.Recv(t.Context(), limit)
			if err != nil {
				break
			}
			if len(msg) > limit {
				t.Fatalf("Recv returned %d bytes over a limit of %d", len(msg), limit)
			}
			got = append(got, append([]byte(nil), msg...))
			if i > len(want) {
				t.Fatalf("Recv returned %d messages; the initiator completed %d", len(got), len(want))
			}
		}
		for i := range got {
			if i >= len(want) || !bytes.Equal(got[i], want[i]) {
				t.Fatalf("message %d: got %q, the initiator sent %q", i, got[i], want)
			}
		}
		// Every completed message within the limit is delivered (until one over the limit).
		deliverable := 0
		for _, m := range want {
			if len(m) > limit {
				break
			}
			deliverable++
		}
		if len(got) != deliverable {
			t.Fatalf("delivered %d of %d messages within the limit", len(got), deliverable)
		}
		// A session that failed stays failed.
		if _, err := s.Recv(t.Context(), limit); err == nil {
			t.Fatalf("Recv succeeded after the session failed")
		}
	})
}

// TestSendRecvOverFakeStream checks the fake stream and the sealer against the real sender: a
// message Send writes is what Recv reads.
func TestSendRecvOverFakeStream(t *testing.T) {
	eI, _ := ecdh.X25519().GenerateKey(rand.Reader)
	eR, _ := ecdh.X25519().GenerateKey(rand.Reader)
	tr := bytes.Repeat([]byte{7}, 32)
	out := &fakeStream{r: bytes.NewReader(nil)}
	sender, err := newSession(out, "", "fuzz", eI, eR.PublicKey().Bytes(), tr, true)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("x"), 2*MaxFramePayload+3)
	if err := sender.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	in := &fakeStream{r: bytes.NewReader(out.w.Bytes())}
	receiver, err := newSession(in, "", "fuzz", eR, eI.PublicKey().Bytes(), tr, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := receiver.Recv(t.Context(), len(msg))
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Recv = %d bytes, %v; want the %d sent", len(got), err, len(msg))
	}
	in = &fakeStream{r: bytes.NewReader(out.w.Bytes())}
	receiver, _ = newSession(in, "", "fuzz", eR, eI.PublicKey().Bytes(), tr, false)
	if _, err := receiver.Recv(t.Context(), len(msg)-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Recv over the limit = %v, want ErrTooLarge", err)
	}
}
