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
	src    Source
	cfg    ServerConfig
	log    *slog.Logger
	handle network.StreamHandler

	mu      sync.Mutex
	serving map[peer.ID][]*slot // each peer's streams, oldest first
	total   int
	seq     uint64
}

// slot is one stream being served.
type slot struct {
	peer peer.ID
	st   network.Stream
	seq  uint64
}

// Register installs the protocol handler on h with the default ServerConfig.
func Register(h host.Host, src Source, log *slog.Logger) *Server {
	return RegisterWith(h, src, ServerConfig{}, log)
}

// RegisterWith installs the protocol handler on h, serving within cfg.
func RegisterWith(h host.Host, src Source, cfg ServerConfig, log *slog.Logger) *Server {
	s := newServer(src, cfg, log)
	h.SetStreamHandler(ID, s.accept)
	return s
}

func newServer(src Source, cfg ServerConfig, log *slog.Logger) *Server {
	s := &Server{src: src, cfg: cfg.withDefaults(), log: log, serving: map[peer.ID][]*slot{}}
	s.handle = wire.Handler(wire.Limits{Service: ServiceName, Timeout: StreamTimeout}, log, s.serve)
	return s
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
	s.handle(st)
}

// admit takes a slot for st. When every slot is taken it may evict the oldest stream of the
// peer holding the most (returned as victim, for the caller to reset).
func (s *Server) admit(st network.Stream) (sl, victim *slot, err error) {
	p := st.Conn().RemotePeer()
	s.mu.Lock()
	defer s.mu.Unlock()
	mine := len(s.serving[p])
	if mine >= s.cfg.MaxStreamsPerPeer {
		return nil, nil, fmt.Errorf("%w: %d streams of this peer", ErrBusy, mine)
	}
	if s.total >= s.cfg.MaxStreams {
		var top []*slot
		for _, slots := range s.serving {
			if len(slots) > len(top) || len(slots) == len(top) && slots[0].seq < top[0].seq {
				top = slots
			}
		}
		if len(top) < mine+2 {
			return nil, nil, fmt.Errorf("%w: %d streams in all", ErrBusy, s.total)
		}
		victim = top[0]
		s.remove(victim)
	}
	s.seq++
	sl = &slot{peer: p, st: st, seq: s.seq}
	s.serving[p] = append(s.serving[p], sl)
	s.total++
	return sl, victim, nil
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

func (s *Server) serve(st network.Stream) error {
	w := newIdleWriter(st, s.cfg.IdleTimeout)
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

func (w *idleWriter) kick() { w.t.Reset(w.idle) }

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
