package chunks

import (
	"errors"
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

// Source is what a server serves from.
type Source interface {
	// Leaves returns a model's concatenated leaf hashes, or ErrUnknownModel.
	Leaves(model [32]byte) ([]byte, error)
	// ReadChunk returns chunk i of a model (buf may be reused), or an error when it is not held.
	ReadChunk(model [32]byte, i uint64, buf []byte) ([]byte, error)
}

// Server answers chunks requests. It bounds the streams it serves (per peer and in all, see
// ServerConfig), reserves each stream's buffer from the resource manager at a priority that
// fails rather than eats into the memory other protocols need, and resets a stream whose peer
// sends no request or reads nothing for IdleTimeout.
type Server struct {
	h   host.Host // nil for a server not installed on a host (tests)
	src Source
	cfg ServerConfig
	log *slog.Logger

	mu       sync.Mutex
	serving  map[peer.ID][]*slot // each peer's streams, oldest first
	total    int
	seq      uint64
	cooldown map[peer.ID]time.Time // peers that may not evict others until then
}

// slot is one stream being served.
type slot struct {
	peer     peer.ID
	st       network.Stream
	seq      uint64
	progress atomic.Int64 // UnixNano of admission or of the last piece written
}

// maxCooldowns bounds the cooldown table; expired entries are swept when it is full.
const maxCooldowns = 4096

// NewServer installs the protocol handler on h, serving src within cfg (zero fields take the
// defaults).
func NewServer(h host.Host, src Source, cfg ServerConfig, log *slog.Logger) *Server {
	s := newServer(src, cfg, log)
	s.h = h
	h.SetStreamHandler(ID, s.accept)
	return s
}

func newServer(src Source, cfg ServerConfig, log *slog.Logger) *Server {
	return &Server{src: src, cfg: cfg.withDefaults(), log: log, serving: map[peer.ID][]*slot{}, cooldown: map[peer.ID]time.Time{}}
}

// Close removes the protocol handler from the host; streams being served run to their end. It
// is idempotent.
func (s *Server) Close() error {
	if s.h != nil {
		s.h.RemoveStreamHandler(ID)
	}
	return nil
}

// accept admits a stream or refuses it before reading a byte or reserving any memory.
func (s *Server) accept(st network.Stream) {
	sl, victim, err := s.admit(st)
	if victim != nil {
		s.log.Debug("chunk stream evicted for a fairer share", "peer", victim.peer, "for", sl.peer)
		victim.st.Reset()
	}
	if err != nil {
		s.log.Debug("chunk stream refused", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	defer s.leave(sl)
	wire.Handler(wire.Limits{Service: ServiceName, Timeout: StreamTimeout}, s.log, func(st network.Stream) error {
		err := s.serve(st, sl)
		if errors.Is(err, ErrIdle) {
			s.cool(sl.peer)
		}
		return err
	})(st)
}

// admit takes a slot for st. When every slot is taken it may evict a stream (returned as
// victim, for the caller to reset): the most stalled one of the peer holding the most streams,
// if that peer holds at least two more than st's; else the most stalled stream that has sent
// nothing for a fifth of the idle timeout, if its peer holds more streams than st's. A peer
// whose stream was evicted or reset for idling may not evict others for an idle timeout.
func (s *Server) admit(st network.Stream) (sl, victim *slot, err error) {
	p := st.Conn().RemotePeer()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	mine := len(s.serving[p])
	if mine >= s.cfg.MaxStreamsPerPeer {
		return nil, nil, fmt.Errorf("%w: %d streams of this peer", ErrBusy, mine)
	}
	if s.total >= s.cfg.MaxStreams {
		if until, ok := s.cooldown[p]; ok && now.Before(until) {
			return nil, nil, fmt.Errorf("%w: %d streams in all, and this peer lost one lately", ErrBusy, s.total)
		}
		victim = s.pickVictim(mine, now)
		if victim == nil {
			return nil, nil, fmt.Errorf("%w: %d streams in all", ErrBusy, s.total)
		}
		s.remove(victim)
		s.coolLocked(victim.peer, now)
	}
	s.seq++
	sl = &slot{peer: p, st: st, seq: s.seq}
	sl.progress.Store(now.UnixNano())
	s.serving[p] = append(s.serving[p], sl)
	s.total++
	return sl, victim, nil
}

// pickVictim chooses the stream to evict for a newcomer whose peer holds mine streams, or nil;
// caller holds mu.
func (s *Server) pickVictim(mine int, now time.Time) *slot {
	stalest := func(slots []*slot) *slot {
		v := slots[0]
		for _, o := range slots[1:] {
			if o.progress.Load() < v.progress.Load() {
				v = o
			}
		}
		return v
	}
	var top []*slot
	for _, slots := range s.serving {
		if len(slots) > len(top) || len(slots) == len(top) && slots[0].seq < top[0].seq {
			top = slots
		}
	}
	if len(top) >= mine+2 {
		return stalest(top)
	}
	stalledBefore := now.Add(-s.cfg.IdleTimeout / 5).UnixNano()
	var v *slot
	for _, slots := range s.serving {
		if len(slots) < mine+1 {
			continue
		}
		if o := stalest(slots); o.progress.Load() < stalledBefore && (v == nil || o.progress.Load() < v.progress.Load()) {
			v = o
		}
	}
	return v
}

// cool bars peer p from evicting others for an idle timeout.
func (s *Server) cool(p peer.ID) {
	s.mu.Lock()
	s.coolLocked(p, time.Now())
	s.mu.Unlock()
}

func (s *Server) coolLocked(p peer.ID, now time.Time) {
	if len(s.cooldown) >= maxCooldowns {
		for q, until := range s.cooldown {
			if now.After(until) {
				delete(s.cooldown, q)
			}
		}
		if len(s.cooldown) >= maxCooldowns {
			return
		}
	}
	s.cooldown[p] = now.Add(s.cfg.IdleTimeout)
}

// leave frees sl's slot unless it was evicted already.
func (s *Server) leave(sl *slot) {
	s.mu.Lock()
	s.remove(sl)
	s.mu.Unlock()
}

// remove drops sl from the table if it is there; caller holds mu.
func (s *Server) remove(sl *slot) {
	slots := s.serving[sl.peer]
	for i, o := range slots {
		if o != sl {
			continue
		}
		slots = append(slots[:i:i], slots[i+1:]...)
		if len(slots) == 0 {
			delete(s.serving, sl.peer)
		} else {
			s.serving[sl.peer] = slots
		}
		s.total--
		return
	}
}

// streams returns how many streams are being served (tests).
func (s *Server) streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

func (s *Server) serve(st network.Stream, sl *slot) error {
	w := newIdleWriter(st, s.cfg.IdleTimeout)
	w.slot = sl
	defer w.stop()
	var req Request
	if err := wire.ReadFrame(st, MaxRequestSize, &req); err != nil {
		return w.cause(fmt.Errorf("read request: %w", err))
	}
	w.kick()
	if err := req.validate(); err != nil {
		return err
	}
	model := [32]byte(req.Model)
	if req.Leaves {
		return w.cause(s.serveLeaves(st, w, model, req.From))
	}
	// One chunk buffer per stream. Bulk serving yields: the reservation fails (and the stream is
	// reset, the fetcher retries) once the resource manager is well filled, instead of taking
	// the memory that key exchange, gossip and the DHT need.
	if err := st.Scope().ReserveMemory(MaxChunkFrame, network.ReservationPriorityMedium); err != nil {
		return fmt.Errorf("%w: reserve memory: %v", ErrBusy, err)
	}
	defer st.Scope().ReleaseMemory(MaxChunkFrame)
	var buf []byte
	for _, i := range req.Indices {
		ct, err := s.src.ReadChunk(model, i, buf)
		if err != nil {
			err = wire.WriteFrame(w, &ChunkResponse{Index: i, Missing: true})
		} else {
			buf = ct
			err = writeChunk(w, i, ct)
		}
		if err != nil {
			return w.cause(fmt.Errorf("write chunk %d: %w", i, err))
		}
	}
	return nil
}

func (s *Server) serveLeaves(st network.Stream, w *idleWriter, model [32]byte, from uint64) error {
	all, err := s.src.Leaves(model)
	if err != nil {
		if errors.Is(err, ErrUnknownModel) {
			return wire.WriteFrame(w, &LeavesResponse{Total: 0})
		}
		return err
	}
	total := uint64(len(all) / 32)
	if from > total {
		return fmt.Errorf("%w: leaves from %d of %d", ErrBadRequest, from, total)
	}
	end := min(total, from+MaxLeavesPerFrame)
	size := int(end-from)*32 + 64
	if err := st.Scope().ReserveMemory(size, network.ReservationPriorityMedium); err != nil {
		return fmt.Errorf("%w: reserve memory: %v", ErrBusy, err)
	}
	defer st.Scope().ReleaseMemory(size)
	return wire.WriteFrame(w, &LeavesResponse{Hashes: all[from*32 : end*32], Total: total})
}

// writePiece is how much of a reply is written at a time: a reader must take at least this
// much every IdleTimeout to keep its stream.
const writePiece = 128 << 10

// idleWriter writes to a stream in pieces and resets the stream when no piece goes out (or,
// before kick, no request comes in) for the idle timeout. It is a watchdog rather than a write
// deadline, so it holds on every transport.
type idleWriter struct {
	slot  *slot // told of progress; nil in tests
	st    network.Stream
	idle  time.Duration
	t     *time.Timer
	fired atomic.Bool
}

func newIdleWriter(st network.Stream, idle time.Duration) *idleWriter {
	w := &idleWriter{st: st, idle: idle}
	w.t = time.AfterFunc(idle, func() {
		w.fired.Store(true)
		st.Reset()
	})
	return w
}

func (w *idleWriter) kick() {
	w.t.Reset(w.idle)
	if w.slot != nil {
		w.slot.progress.Store(time.Now().UnixNano())
	}
}

func (w *idleWriter) stop() { w.t.Stop() }

// cause names the idle timeout as the reason when the watchdog cut the stream.
func (w *idleWriter) cause(err error) error {
	if err != nil && w.fired.Load() {
		return fmt.Errorf("%w: nothing taken for %v: %v", ErrIdle, w.idle, err)
	}
	return err
}

func (w *idleWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k, err := w.st.Write(p[:min(len(p), writePiece)])
		n += k
		if err != nil {
			return n, err
		}
		w.kick()
		p = p[k:]
	}
	return n, nil
}
