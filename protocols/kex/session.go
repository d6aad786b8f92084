package kex

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// Session is an authenticated, encrypted channel to one peer.
type Session struct {
	st      network.Stream
	remote  peer.ID
	purpose string
	ad      []byte // transcript hash, associated data of every frame

	sendMu  sync.Mutex
	send    cipher.AEAD
	sendKey []byte
	sendCtr uint64

	recvMu  sync.Mutex
	recv    cipher.AEAD
	recvKey []byte
	recvCtr uint64
	buf     []byte
	read    atomic.Int64 // bytes of frames read (after the handshake)

	// scope, on an accepted session, is the stream's resource-manager scope, from which the
	// frame buffer's memory is reserved as it grows; reserved is how much (released by Close).
	scope    network.ResourceScope
	reserved int

	// idle bounds each frame's wait for the peer; expires (zero: never) ends the session.
	idle    time.Duration
	expires time.Time

	closeOnce sync.Once
}

// RemotePeer returns the authenticated peer.
func (s *Session) RemotePeer() peer.ID { return s.remote }

// LocalPeer returns this side's peer ID.
func (s *Session) LocalPeer() peer.ID { return s.st.Conn().LocalPeer() }

// BytesRead returns how many bytes of frames the session has read from the peer since the
// handshake (what a receiver paid for the messages it took).
func (s *Session) BytesRead() int64 { return s.read.Load() }

// Purpose returns the purpose the session was opened for.
func (s *Session) Purpose() string { return s.purpose }

// transcript computes T (see the package comment).
func transcript(purpose string, initiator, responder peer.ID, eI, eR, nI, nR []byte) []byte {
	h := sha256.New()
	h.Write([]byte("califusion/kex/v1"))
	for _, f := range [][]byte{[]byte(ID), []byte(purpose), []byte(initiator), []byte(responder)} {
		var l [2]byte
		binary.BigEndian.PutUint16(l[:], uint16(len(f)))
		h.Write(l[:])
		h.Write(f)
	}
	for _, f := range [][]byte{eI, eR, nI, nR} {
		h.Write(f)
	}
	return h.Sum(nil)
}

const (
	sigInitiator = "califusion/kex/v1/initiator"
	sigResponder = "califusion/kex/v1/responder"
)

func sign(key crypto.PrivKey, role string, t []byte) ([]byte, error) {
	return key.Sign(append([]byte(role), t...))
}

// verify checks sig by the identity behind id: the key embedded in the ID (Ed25519), or else the
// key the connection's security handshake authenticated (then in the peerstore too), which must
// hash to id.
func verify(conn network.Conn, ps peerstore.Peerstore, id peer.ID, role string, t, sig []byte) error {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		if pub = conn.RemotePublicKey(); pub == nil || !id.MatchesPublicKey(pub) {
			pub = ps.PubKey(id)
		}
		if pub == nil || !id.MatchesPublicKey(pub) {
			return fmt.Errorf("%w: no public key for %s", ErrPeerMismatch, id)
		}
	}
	ok, err := pub.Verify(append([]byte(role), t...), sig)
	if err != nil || !ok {
		return ErrBadSignature
	}
	return nil
}

// newSession derives the direction keys from the shared secret.
func newSession(st network.Stream, remote peer.ID, purpose string, priv *ecdh.PrivateKey, peerEph, t []byte, initiator bool) (*Session, error) {
	pub, err := ecdh.X25519().NewPublicKey(peerEph)
	if err != nil {
		return nil, ErrHandshake
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, ErrHandshake // an all-zero result: a low-order point
	}
	defer clear(shared)
	kIR, err := hkdf.Key(sha256.New, shared, t, "califusion/kex/v1 I->R", 32)
	if err != nil {
		return nil, err
	}
	kRI, err := hkdf.Key(sha256.New, shared, t, "califusion/kex/v1 R->I", 32)
	if err != nil {
		return nil, err
	}
	s := &Session{st: st, remote: remote, purpose: purpose, ad: t}
	sendKey, recvKey := kIR, kRI
	if !initiator {
		sendKey, recvKey = kRI, kIR
	}
	if s.send, err = gcm(sendKey); err != nil {
		return nil, err
	}
	if s.recv, err = gcm(recvKey); err != nil {
		return nil, err
	}
	s.sendKey, s.recvKey = sendKey, recvKey
	return s, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func nonce(ctr uint64) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[4:], ctr)
	return n
}

// watch bounds one Send or Recv: before each frame, arm sets the stream's deadline (and a timer
// that resets it, for transports without deadlines) to the earliest of now + the idle timeout,
// the session's expiry and ctx's deadline; ctx's cancellation resets the stream too.
type watch struct {
	s      *Session
	set    func(time.Time) error // the stream's read or write deadline
	ctx    context.Context
	timer  *time.Timer
	stop   func() bool
	at     time.Time // the armed deadline
	cause  error     // what reaching it means
	fired  atomic.Bool
	expiry atomic.Value // the cause when the timer fired
}

func (s *Session) watch(ctx context.Context, set func(time.Time) error) (*watch, error) {
	if !s.expires.IsZero() && !time.Now().Before(s.expires) {
		s.st.Reset()
		return nil, ErrExpired
	}
	w := &watch{s: s, set: set, ctx: ctx}
	w.stop = context.AfterFunc(ctx, func() { s.st.Reset() })
	return w, nil
}

func (w *watch) arm() {
	idle := w.s.idle
	if idle <= 0 {
		idle = DialIdleTimeout
	}
	w.at, w.cause = time.Now().Add(idle), ErrIdle
	if e := w.s.expires; !e.IsZero() && e.Before(w.at) {
		w.at, w.cause = e, ErrExpired
	}
	if d, ok := w.ctx.Deadline(); ok && d.Before(w.at) {
		w.at, w.cause = d, context.DeadlineExceeded
	}
	w.set(w.at)
	cause := w.cause
	if w.timer != nil {
		w.timer.Stop()
	}
	w.timer = time.AfterFunc(time.Until(w.at), func() { w.expiry.Store(cause); w.fired.Store(true); w.s.st.Reset() })
}

// why explains a failed read or write: the bound that was reached, or ctx's end, or err.
func (w *watch) why(err error) error {
	switch {
	case w.fired.Load():
		return w.expiry.Load().(error)
	case w.ctx.Err() != nil:
		return w.ctx.Err()
	case !w.at.IsZero() && !time.Now().Before(w.at):
		return w.cause
	}
	return err
}

func (w *watch) done() {
	w.stop()
	if w.timer != nil {
		w.timer.Stop()
	}
}

// Send encrypts msg and writes it as one or more frames.
func (s *Session) Send(ctx context.Context, msg []byte) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.send == nil {
		return ErrClosed
	}
	w, err := s.watch(ctx, s.st.SetWriteDeadline)
	if err != nil {
		return err
	}
	defer w.done()
	plain := make([]byte, 0, min(len(msg), MaxFramePayload)+1)
	for first := true; first || len(msg) > 0; first = false {
		n := min(len(msg), MaxFramePayload)
		last := byte(0)
		if n == len(msg) {
			last = 1
		}
		plain = append(append(plain[:0], last), msg[:n]...)
		msg = msg[n:]
		ct := s.send.Seal(nil, nonce(s.sendCtr), plain, s.ad)
		s.sendCtr++
		w.arm()
		if err := wire.WriteRaw(s.st, ct); err != nil {
			s.st.Reset()
			return fmt.Errorf("kex: send to %s: %w", s.remote, w.why(err))
		}
	}
	return nil
}

// Recv reads the next message, refusing one larger than max bytes.
func (s *Session) Recv(ctx context.Context, max int) ([]byte, error) {
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	if s.recv == nil {
		return nil, ErrClosed
	}
	w, err := s.watch(ctx, s.st.SetReadDeadline)
	if err != nil {
		return nil, err
	}
	defer w.done()
	var out []byte
	for {
		w.arm()
		ct, err := wire.ReadRaw(s.st, maxFrameCipher, s.buf)
		if err != nil {
			s.st.Reset()
			err = w.why(err)
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("kex: %s closed the session: %w", s.remote, io.EOF)
			}
			return nil, fmt.Errorf("kex: receive from %s: %w", s.remote, err)
		}
		if s.scope != nil && cap(ct) > s.reserved {
			if err := s.scope.ReserveMemory(cap(ct)-s.reserved, network.ReservationPriorityHigh); err != nil {
				s.st.Reset()
				return nil, fmt.Errorf("kex: receive from %s: reserve memory for a %d-byte frame: %w", s.remote, len(ct), err)
			}
			s.reserved = cap(ct)
		}
		s.buf = ct
		s.read.Add(int64(len(ct)) + int64(uvarintLen(len(ct))))
		plain, err := s.recv.Open(ct[:0], nonce(s.recvCtr), ct, s.ad)
		if err != nil || len(plain) == 0 || plain[0] > 1 {
			s.st.Reset()
			clear(s.recvKey)
			s.recv = nil
			return nil, ErrTampered
		}
		s.recvCtr++
		if len(out)+len(plain)-1 > max {
			s.st.Reset()
			return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
		}
		out = append(out, plain[1:]...)
		if plain[0] == 1 {
			return out, nil
		}
	}
}

// Close ends the session: the stream is closed and the keys are zeroed.
func (s *Session) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.st.Close() // unblocks a Recv or Send in progress
		s.sendMu.Lock()
		s.recvMu.Lock()
		s.wipe()
		if s.scope != nil && s.reserved > 0 {
			s.scope.ReleaseMemory(s.reserved) // a no-op if the closed stream's scope is done
			s.reserved = 0
		}
		s.recvMu.Unlock()
		s.sendMu.Unlock()
	})
	return err
}

// Reset aborts the session.
func (s *Session) Reset() {
	s.st.Reset()
	s.Close()
}

// wipe zeroes the keys; callers hold both locks (or own the session exclusively).
func (s *Session) wipe() {
	clear(s.sendKey)
	clear(s.recvKey)
	s.send, s.recv = nil, nil
}

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}
