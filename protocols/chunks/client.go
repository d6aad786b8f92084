package chunks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// openRequest opens a stream to p and sends req, giving up after timeout.
func openRequest(ctx context.Context, h host.Host, p peer.ID, req *Request, timeout time.Duration) (network.Stream, error) {
	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := h.NewStream(network.WithAllowLimitedConn(octx, ID), p, ID)
	if err != nil {
		return nil, fmt.Errorf("open stream to %s: %w", p, err)
	}
	st.SetWriteDeadline(time.Now().Add(timeout))
	if err := wire.WriteFrame(st, req); err != nil {
		st.Reset()
		return nil, fmt.Errorf("send request to %s: %w", p, err)
	}
	if err := st.CloseWrite(); err != nil {
		st.Reset()
		return nil, fmt.Errorf("send request to %s: %w", p, err)
	}
	return st, nil
}

// FetchLeaves downloads a model's leaf list from p and checks it against root. A request the
// peer refuses or cuts off is retried (maxFailures tries in all, with backoff), as a busy server
// refuses streams it has no slot for; bad data or an unknown model is not.
func FetchLeaves(ctx context.Context, h host.Host, p peer.ID, model [32]byte, count uint64, root []byte) ([][32]byte, error) {
	for n := 1; ; n++ {
		leaves, err := fetchLeaves(ctx, h, p, model, count, root)
		if err == nil || n >= maxFailures || Misbehaviour(err) || errors.Is(err, ErrUnknownModel) || ctx.Err() != nil {
			return leaves, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(n) * retryBackoff):
		}
	}
}

func fetchLeaves(ctx context.Context, h host.Host, p peer.ID, model [32]byte, count uint64, root []byte) ([][32]byte, error) {
	all := make([]byte, 0, min(count, MaxLeavesPerFrame)*32) // count comes from a manifest: grow as leaves arrive
	for uint64(len(all)/32) < count || count == 0 {
		st, err := openRequest(ctx, h, p, &Request{Model: model[:], Leaves: true, From: uint64(len(all) / 32)}, StreamTimeout)
		if err != nil {
			return nil, err
		}
		deadline := time.Now().Add(StreamTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		st.SetDeadline(deadline)
		var resp LeavesResponse
		err = wire.ReadFrame(st, MaxLeavesFrame, &resp)
		st.Close()
		if err != nil {
			st.Reset()
			return nil, fmt.Errorf("read leaves from %s: %w", p, err)
		}
		if resp.Total == 0 && count > 0 {
			return nil, fmt.Errorf("%s: %w", p, ErrUnknownModel)
		}
		if resp.Total != count || len(resp.Hashes)%32 != 0 || len(resp.Hashes) == 0 && count > 0 {
			return nil, fmt.Errorf("%w: %s sent %d leaf bytes of a %d-leaf list (model has %d chunks)", content.ErrLeaves, p, len(resp.Hashes), resp.Total, count)
		}
		all = append(all, resp.Hashes...)
		if uint64(len(all)) > count*32 {
			return nil, fmt.Errorf("%w: %s sent more leaves than the model has", content.ErrLeaves, p)
		}
		if count == 0 {
			break
		}
	}
	leaves, err := content.LeavesFromBytes(all)
	if err != nil {
		return nil, err
	}
	if err := content.CheckLeaves(leaves, count, root); err != nil {
		return nil, fmt.Errorf("leaves from %s: %w", p, err)
	}
	return leaves, nil
}

// Config tunes a Fetcher.
type Config struct {
	Window       int           // chunks per request
	PerPeer      int           // requests in flight per peer (at most DefaultMaxStreamsPerPeer-1)
	StallTimeout time.Duration // longest wait for the next chunk from a peer
}

// Target is one model to fetch.
type Target struct {
	Model   [32]byte
	Leaves  [][32]byte
	Missing []uint64 // chunk indices still needed
	// Put receives each verified chunk once; it may be called from several goroutines. ct is
	// valid only during the call (it is a view into the fetcher's read buffer): copy what you
	// keep. An error from Put fails the whole fetch (for example, a full disk).
	Put func(i uint64, ct []byte) error
	// Progress, when set, is told after each chunk how many are done and from how many peers.
	Progress func(done, total, peers int)
	// Misbehaved, when set, is told once about each provider dropped for serving bad data
	// (see Misbehaviour), so that the caller can remember it beyond this fetch.
	Misbehaved func(p peer.ID, err error)
	// More, when set, brings providers found while the fetch runs; each new one starts like the
	// initial ones. The fetch stops reading it when it ends; close it when no more will come.
	More <-chan peer.ID
}

// Misbehaviour reports whether err shows a provider serving bad data — a chunk that fails its
// Merkle leaf, a leaf list that fails the root, a malformed or oversized frame — rather than
// being slow, busy or gone.
func Misbehaviour(err error) bool {
	return errors.Is(err, ErrBadChunk) || errors.Is(err, content.ErrLeaves) ||
		errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrFrameTooLarge)
}

// Fetcher pulls models from several providers at once.
type Fetcher struct {
	h   host.Host
	cfg Config
	log *slog.Logger
}

// NewFetcher returns a fetcher that dials from h.
func NewFetcher(h host.Host, cfg Config, log *slog.Logger) *Fetcher {
	if cfg.Window <= 0 || cfg.Window > MaxWindow {
		cfg.Window = 8
	}
	if cfg.PerPeer <= 0 {
		cfg.PerPeer = 2
	}
	// A server refuses a peer's streams beyond its per-peer cap, and refusals in a row drop the
	// provider: stay below the default cap, with room for a leaves request.
	cfg.PerPeer = min(cfg.PerPeer, DefaultMaxStreamsPerPeer-1)
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 15 * time.Second
	}
	return &Fetcher{h: h, cfg: cfg, log: log}
}

// Fetch downloads t.Missing from providers, verifying every chunk against its leaf. Each provider
// gets up to PerPeer windows in flight; when the queue runs dry, idle peers duplicate work still
// in flight at slower peers (endgame), and the first verified copy wins. A provider that sends a
// bad chunk, fails, or stalls for StallTimeout is dropped and its work goes back to the queue.
// Providers received on t.More while the fetch runs join it like the initial ones (a provider
// already used, or dropped, is ignored); while More is open, running out of providers does not
// fail the fetch: it waits for More to bring one, to close, or for ctx.
func (f *Fetcher) Fetch(ctx context.Context, t Target, providers []peer.ID) error {
	if len(t.Missing) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := newScheduler(t.Missing)
	// Once every chunk is in, stop the stragglers (a dial to a dead address, a slow window).
	go func() {
		select {
		case <-s.complete:
			cancel()
		case <-ctx.Done():
		}
	}()
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		fatal    error
		mu       sync.Mutex // guards the fields below
		drops    []string
		active   int
		seen     = map[peer.ID]bool{}
		moreDone = t.More == nil
	)
	setFatal := func(err error) {
		errMu.Lock()
		if fatal == nil {
			fatal = err
		}
		errMu.Unlock()
		cancel()
	}
	// summary is the error of a fetch with no provider left; call with mu held.
	summary := func() error {
		return fmt.Errorf("%w (%d chunks left): %s", ErrNoProviders, s.remaining(), strings.Join(drops, "; "))
	}
	activeNow := func() int { mu.Lock(); defer mu.Unlock(); return active }
	// add counts p as active unless it was seen before; spawn starts its workers. The initial
	// providers are all added before any starts, so the first one dropped cannot leave the fetch
	// with no active provider while the others are still being started.
	add := func(p peer.ID) bool {
		mu.Lock()
		defer mu.Unlock()
		if seen[p] {
			return false
		}
		seen[p] = true
		active++
		return true
	}
	spawn := func(p peer.ID) {
		ps := &peerState{id: p, lacks: map[uint64]bool{}}
		for w := 0; w < f.cfg.PerPeer; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := f.worker(ctx, t, s, ps, activeNow)
				if err == nil || ctx.Err() != nil {
					return
				}
				var fe *fatalError
				if errors.As(err, &fe) {
					setFatal(fe.err)
					return
				}
				if ps.drop() {
					mu.Lock()
					active--
					drops = append(drops, fmt.Sprintf("%s: %v", p, err))
					var none error
					if active == 0 && moreDone {
						none = summary()
					}
					mu.Unlock()
					f.log.Info("provider dropped", "peer", p, "model", fmt.Sprintf("%x", t.Model[:6]), "err", err)
					f.h.ConnManager().TagPeer(p, "califusion-chunks-bad", -100)
					if t.Misbehaved != nil && Misbehaviour(err) {
						t.Misbehaved(p, err)
					}
					if none != nil {
						setFatal(none)
					}
				}
				s.wake()
			}()
		}
	}
	var initial []peer.ID
	for _, p := range providers {
		if add(p) {
			initial = append(initial, p)
		}
	}
	for _, p := range initial {
		spawn(p)
	}
	if t.More != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case p, ok := <-t.More:
					if ok {
						if add(p) {
							spawn(p)
						}
						continue
					}
					mu.Lock()
					moreDone = true
					var none error
					if active == 0 && len(drops) > 0 {
						none = summary()
					}
					mu.Unlock()
					if none != nil {
						setFatal(none)
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	if fatal != nil {
		return fatal
	}
	if n := s.remaining(); n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		mu.Lock()
		tried := len(seen)
		mu.Unlock()
		return fmt.Errorf("%w: %d chunks left, held by none of %d providers", ErrNoProviders, n, tried)
	}
	return nil
}

// fatalError ends the whole fetch, not just one peer.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

type peerState struct {
	id       peer.ID
	mu       sync.Mutex
	dropped  bool
	failures int // requests failed in a row
	lacks    map[uint64]bool
}

// failed counts a failed request and returns the run length.
func (p *peerState) failed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures++
	return p.failures
}

// succeeded resets the failure run.
func (p *peerState) succeeded() {
	p.mu.Lock()
	p.failures = 0
	p.mu.Unlock()
}

// drop marks the peer dropped; it reports true the first time.
func (p *peerState) drop() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := !p.dropped
	p.dropped = true
	return first
}

func (p *peerState) isDropped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

func (f *Fetcher) worker(ctx context.Context, t Target, s *scheduler, ps *peerState, active func() int) error {
	total := len(t.Missing)
	var buf []byte
	for {
		if ps.isDropped() {
			return nil
		}
		idx, wait := s.next(f.cfg.Window, ps)
		if idx == nil {
			if wait == nil {
				return nil // all done, or nothing this peer can still contribute
			}
			select {
			case <-ctx.Done():
				return nil
			case <-wait:
				continue
			}
		}
		err := f.request(ctx, t, s, ps, idx, &buf, func() {
			if t.Progress != nil {
				t.Progress(total-s.remaining(), total, active())
			}
		})
		s.release(ps.id, idx)
		if err == nil {
			ps.succeeded()
			continue
		}
		// A bad chunk, a stall, a hostile frame or a fatal error ends this peer at once; anything else (a reset
		// stream, a busy resource manager on the other side) is retried with backoff, and the
		// peer is dropped only after maxFailures in a row.
		var fe *fatalError
		if errors.Is(err, ErrBadChunk) || errors.Is(err, ErrStalled) || errors.Is(err, wire.ErrFrameTooLarge) ||
			errors.Is(err, wire.ErrMalformed) || errors.As(err, &fe) || ctx.Err() != nil {
			return err
		}
		n := ps.failed()
		if n >= maxFailures {
			return err
		}
		f.log.Debug("chunk request failed; retrying", "peer", ps.id, "failures", n, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(n) * retryBackoff):
		}
	}
}

// maxFailures is how many failed requests in a row drop a provider; the n-th failure waits
// n×retryBackoff before the next try, so a provider gets about two seconds to take a refused
// stream (a busy server frees slots as streams finish or stall).
const (
	maxFailures  = 4
	retryBackoff = 300 * time.Millisecond
)

// request fetches one window from a peer.
func (f *Fetcher) request(ctx context.Context, t Target, s *scheduler, ps *peerState, idx []uint64, buf *[]byte, progressed func()) error {
	st, err := openRequest(ctx, f.h, ps.id, &Request{Model: t.Model[:], Indices: idx}, f.cfg.StallTimeout)
	if err != nil {
		return err
	}
	defer st.Close()
	// A watchdog rather than read deadlines: it works on every transport, and a peer that stops
	// sending is cut off after StallTimeout whatever the stream supports.
	var stalled atomic.Bool
	watchdog := time.AfterFunc(f.cfg.StallTimeout, func() {
		stalled.Store(true)
		st.Reset()
	})
	defer watchdog.Stop()
	// When the fetch ends (all chunks in, or cancelled), cut this window off at once.
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	want := make(map[uint64]bool, len(idx))
	for _, i := range idx {
		want[i] = true
	}
	for range idx {
		watchdog.Reset(f.cfg.StallTimeout)
		raw, err := wire.ReadRaw(st, MaxChunkFrame, *buf)
		if err != nil {
			st.Reset()
			if stalled.Load() {
				return fmt.Errorf("%w: no data for %v", ErrStalled, f.cfg.StallTimeout)
			}
			return fmt.Errorf("read chunk: %w", err)
		}
		*buf = raw
		resp, err := parseChunk(raw) // resp.Data is a view into *buf: Put must copy what it keeps
		if err != nil {
			st.Reset()
			return err
		}
		if !want[resp.Index] {
			st.Reset()
			return fmt.Errorf("%w: unrequested or repeated index %d", ErrBadChunk, resp.Index)
		}
		delete(want, resp.Index)
		if resp.Missing {
			ps.mu.Lock()
			ps.lacks[resp.Index] = true
			ps.mu.Unlock()
			continue
		}
		if s.stored(resp.Index) {
			continue // another peer's copy won (endgame); no need to hash this one
		}
		if content.Leaf(resp.Data) != t.Leaves[resp.Index] {
			st.Reset()
			return fmt.Errorf("%w: index %d", ErrBadChunk, resp.Index)
		}
		if s.claim(resp.Index) {
			if err := t.Put(resp.Index, resp.Data); err != nil {
				st.Reset()
				return &fatalError{fmt.Errorf("store chunk %d: %w", resp.Index, err)}
			}
			s.finish(resp.Index)
			progressed()
		}
	}
	return nil
}
