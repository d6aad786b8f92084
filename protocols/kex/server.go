package kex

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Handler serves one session; the server closes the session when it returns (resetting the
// stream if it returned an error).
type Handler func(ctx context.Context, s *Session) error

// Server accepts sessions and dispatches them by purpose. It bounds every session it accepts:
// an idle timeout per frame, a total lifetime, and caps on the sessions open per remote peer and
// in total (doc.go "Limits").
type Server struct {
	h      host.Host
	log    *slog.Logger
	ctx    context.Context // sessions' parent; Close cancels it
	cancel context.CancelFunc

	idle, lifetime, streamTimeout time.Duration
	perPeer, total                int

	mu       sync.Mutex
	handlers map[string]Handler
	seen     map[string]time.Time // initiator nonces within ReplayWindow
	pruned   time.Time            // when seen was last pruned
	open     map[peer.ID]int      // sessions (handshakes included) per remote peer
	opened   int                  // their sum
}

// maxSeen caps the initiator nonces a server remembers.
const maxSeen = 1 << 16

// Option changes one of a Server's limits from its default in protocol.go.
type Option func(*Server)

// WithIdleTimeout sets how long an accepted session waits for its peer per frame.
func WithIdleTimeout(d time.Duration) Option { return func(s *Server) { s.idle = d } }

// WithSessionLifetime sets how long an accepted session may last in total.
func WithSessionLifetime(d time.Duration) Option { return func(s *Server) { s.lifetime = d } }

// WithStreamTimeout sets how long the peer has to complete the handshake.
func WithStreamTimeout(d time.Duration) Option { return func(s *Server) { s.streamTimeout = d } }

// WithMaxSessionsPerPeer sets how many sessions one remote peer may hold open at once.
func WithMaxSessionsPerPeer(n int) Option { return func(s *Server) { s.perPeer = n } }

// WithMaxSessions sets how many sessions the server holds open in total.
func WithMaxSessions(n int) Option { return func(s *Server) { s.total = n } }

// NewServer registers the kex protocol on h; sessions live as long as ctx, or until Close (and
// each at most its lifetime).
func NewServer(ctx context.Context, h host.Host, log *slog.Logger, opts ...Option) *Server {
	s := &Server{
		h: h, log: log, handlers: map[string]Handler{}, seen: map[string]time.Time{}, open: map[peer.ID]int{},
		idle: IdleTimeout, lifetime: SessionLifetime, streamTimeout: StreamTimeout,
		perPeer: MaxSessionsPerPeer, total: MaxSessions,
	}
	for _, o := range opts {
		o(s)
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	// The steps of every stream handler, in order (wire.Handler): attach to the resource
	// manager and reserve the handshake's buffers (the session reserves its frame buffer as it
	// grows), set the handshake's deadline, take a session slot (the per-peer and total caps)
	// before anything is read, then handshake and serve (accept).
	lim := wire.Limits{
		Service:  ServiceName,
		Memory:   handshakeMemory,
		Priority: network.ReservationPriorityHigh,
		Timeout:  s.streamTimeout,
		Admit:    s.admit,
	}
	h.SetStreamHandler(ID, wire.Handler(lim, log, s.accept))
	return s
}

// Close removes the kex handler from the host and ends the sessions in progress (their context
// is cancelled). It is idempotent.
func (s *Server) Close() error {
	s.h.RemoveStreamHandler(ID)
	s.cancel()
	return nil
}

// Handle routes sessions opened for purpose to fn.
func (s *Server) Handle(purpose string, fn Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[purpose] = fn
}

// RemoveHandler stops routing sessions opened for purpose: a new one is refused as an unknown
// purpose; sessions in progress run to their end.
func (s *Server) RemoveHandler(purpose string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.handlers, purpose)
}

// Sessions reports how many sessions p holds open on the server, and how many are open in all.
func (s *Server) Sessions(p peer.ID) (forPeer, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open[p], s.opened
}

// admit takes a session slot for p (wire.Limits.Admit), or refuses with ErrBusy when p or the
// server is at its cap.
func (s *Server) admit(p peer.ID) (release func(), err error) {
	if !s.acquire(p) {
		return nil, ErrBusy
	}
	return func() { s.release(p) }, nil
}

// acquire takes a session slot for p, or reports that p or the server is at its cap.
func (s *Server) acquire(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[p] >= s.perPeer || s.opened >= s.total {
		return false
	}
	s.open[p]++
	s.opened++
	return true
}

func (s *Server) release(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[p]--; s.open[p] <= 0 {
		delete(s.open, p)
	}
	s.opened--
}

// accept serves an admitted stream (the last step of wire.Handler): it reads the capped Hello,
// validates it, dispatches by purpose from the handler table and replies (the handshake), then
// runs the purpose's handler with the idle timeout and the lifetime in force. The session is
// closed when the handler succeeds and reset when it fails, before wire.Handler ends the stream
// (so its keys are wiped once nothing can block on them).
func (s *Server) accept(st network.Stream) error {
	began := time.Now()
	sess, fn, err := s.handshake(st)
	if err != nil {
		return fmt.Errorf("handshake refused: %w", err)
	}
	sess.idle, sess.expires, sess.scope = s.idle, began.Add(s.lifetime), st.Scope()
	ctx, cancel := context.WithDeadline(s.ctx, sess.expires)
	defer cancel()
	if err := fn(ctx, sess); err != nil {
		sess.Reset()
		return fmt.Errorf("session for %q: %w", sess.purpose, err)
	}
	sess.Close()
	return nil
}

// handshake runs the responder's side under the handshake timeout (a timer as well as the
// stream deadline, so that transports without deadlines are bounded too).
func (s *Server) handshake(st network.Stream) (*Session, Handler, error) {
	var late atomic.Bool
	timer := time.AfterFunc(s.streamTimeout, func() { late.Store(true); st.Reset() })
	defer timer.Stop()
	sess, fn, err := s.respond(st)
	if err != nil && late.Load() {
		err = fmt.Errorf("%w: handshake not completed within %v", ErrIdle, s.streamTimeout)
	}
	return sess, fn, err
}

func (s *Server) respond(st network.Stream) (*Session, Handler, error) {
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
// Expired nonces are pruned at most once a second, so a flood of
// handshakes does not make each one walk the whole set.
func (s *Server) remember(nonce string) bool {
	now := time.Now()
	if now.Sub(s.pruned) > time.Second {
		s.pruned = now
		for n, at := range s.seen {
			if now.Sub(at) > ReplayWindow {
				delete(s.seen, n)
			}
		}
	}
	if _, ok := s.seen[nonce]; ok {
		return true
	}
	if len(s.seen) < maxSeen {
		s.seen[nonce] = now
	}
	return false
}
