package kex

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
)

// Handler serves one session; the server closes the session when it returns (resetting the
// stream if it returned an error).
type Handler func(ctx context.Context, s *Session) error

// Server accepts sessions and dispatches them by purpose.
type Server struct {
	h   host.Host
	log *slog.Logger
	ctx context.Context

	mu       sync.Mutex
	handlers map[string]Handler
	seen     map[string]time.Time // initiator nonces within ReplayWindow
}

// NewServer registers the kex protocol on h; handlers live as long as ctx.
func NewServer(ctx context.Context, h host.Host, log *slog.Logger) *Server {
	s := &Server{h: h, log: log, ctx: ctx, handlers: map[string]Handler{}, seen: map[string]time.Time{}}
	h.SetStreamHandler(ID, s.accept)
	return s
}

// Handle routes sessions opened for purpose to fn.
func (s *Server) Handle(purpose string, fn Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[purpose] = fn
}

func (s *Server) accept(st network.Stream) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("kex handler panicked", "peer", st.Conn().RemotePeer(), "panic", p)
			st.Reset()
		}
	}()
	sess, fn, err := s.handshake(st)
	if err != nil {
		s.log.Debug("kex handshake refused", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	if err := fn(s.ctx, sess); err != nil {
		s.log.Debug("kex session failed", "peer", sess.remote, "purpose", sess.purpose, "err", err)
		sess.Reset()
		return
	}
	sess.Close()
}

func (s *Server) handshake(st network.Stream) (*Session, Handler, error) {
	if err := st.Scope().SetService("califusion.kex"); err != nil {
		return nil, nil, err
	}
	st.SetDeadline(time.Now().Add(HandshakeTimeout))
	var hi hello
	if err := wire.ReadFrame(st, MaxHandshakeMsg, &hi); err != nil {
		return nil, nil, fmt.Errorf("read hello: %w", err)
	}
	if err := hi.check(); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	fn := s.handlers[hi.Purpose]
	replayed := s.remember(hex.EncodeToString(hi.Nonce))
	s.mu.Unlock()
	if fn == nil {
		return nil, nil, fmt.Errorf("%w: %q", ErrUnknownPurpose, hi.Purpose)
	}
	if replayed {
		return nil, nil, ErrReplay
	}
	key := s.h.Peerstore().PrivKey(s.h.ID())
	remote := st.Conn().RemotePeer()
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	rep := reply{Eph: eph.PublicKey().Bytes(), Nonce: make([]byte, 32)}
	rand.Read(rep.Nonce)
	t := transcript(hi.Purpose, remote, s.h.ID(), hi.Eph, rep.Eph, hi.Nonce, rep.Nonce)
	if rep.Sig, err = sign(key, sigResponder, t); err != nil {
		return nil, nil, err
	}
	if err := wire.WriteFrame(st, &rep); err != nil {
		return nil, nil, fmt.Errorf("send reply: %w", err)
	}
	var fin finish
	if err := wire.ReadFrame(st, MaxHandshakeMsg, &fin); err != nil {
		return nil, nil, fmt.Errorf("read finish: %w", err)
	}
	if err := verify(st.Conn(), s.h.Peerstore(), remote, sigInitiator, t, fin.Sig); err != nil {
		return nil, nil, err
	}
	sess, err := newSession(st, remote, hi.Purpose, eph, hi.Eph, t, false)
	if err != nil {
		return nil, nil, err
	}
	st.SetDeadline(time.Time{})
	return sess, fn, nil
}

// remember records an initiator nonce and reports whether it was already seen; caller holds mu.
func (s *Server) remember(nonce string) bool {
	now := time.Now()
	for n, at := range s.seen {
		if now.Sub(at) > ReplayWindow {
			delete(s.seen, n)
		}
	}
	if _, ok := s.seen[nonce]; ok {
		return true
	}
	if len(s.seen) < 1<<16 {
		s.seen[nonce] = now
	}
	return false
}
