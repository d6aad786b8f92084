package chunks

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// model is a packaged model held in memory.
type model struct {
	id     [32]byte
	chunks [][]byte
	leaves [][32]byte
	root   [32]byte
}

func newModel(t *testing.T, n int) *model {
	t.Helper()
	plain := make([]byte, n*content.MinChunkSize-100)
	rand.Read(plain)
	key, _ := content.NewKey()
	m := &model{}
	rand.Read(m.id[:])
	p, err := content.Package(context.Background(), bytes.NewReader(plain), uint64(len(plain)), content.MinChunkSize, key, make([]byte, content.SaltSize), 1, func(i uint64, ct []byte) error {
		m.chunks = append(m.chunks, bytes.Clone(ct))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m.leaves, m.root = p.Leaves, p.Root
	return m
}

// source serves a model, with knobs for hostile behaviour.
type source struct {
	m      *model
	served atomic.Int64
	lie    bool          // flip a byte in every chunk
	hang   chan struct{} // block every chunk read until closed
	delay  time.Duration // sleep before every chunk read
	has    func(i uint64) bool
	read7  atomic.Bool // chunk 7 was read
}

func (s *source) Leaves(id [32]byte) ([]byte, error) {
	if id != s.m.id {
		return nil, ErrUnknownModel
	}
	return content.LeavesToBytes(s.m.leaves), nil
}

func (s *source) ReadChunk(id [32]byte, i uint64, _ []byte) ([]byte, error) {
	if id != s.m.id || i >= uint64(len(s.m.chunks)) || (s.has != nil && !s.has(i)) {
		return nil, errors.New("not held")
	}
	if s.hang != nil {
		<-s.hang
	}
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.served.Add(1)
	if i == 7 {
		s.read7.Store(true)
	}
	ct := bytes.Clone(s.m.chunks[i])
	if s.lie {
		ct[0] ^= 0xff
	}
	return ct, nil
}

func newNet(t *testing.T, n int) []host.Host {
	t.Helper()
	mn, err := mocknet.FullMeshConnected(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	return mn.Hosts()
}

var quiet = slog.New(slog.DiscardHandler)

// sink collects fetched chunks.
type sink struct {
	mu  sync.Mutex
	got map[uint64][]byte
}

func (k *sink) put(i uint64, ct []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.got == nil {
		k.got = map[uint64][]byte{}
	}
	if _, dup := k.got[i]; dup {
		return errors.New("chunk stored twice")
	}
	k.got[i] = bytes.Clone(ct)
	return nil
}

func all(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i)
	}
	return out
}

func fetch(t *testing.T, h host.Host, m *model, missing []uint64, cfg Config, providers ...peer.ID) (*sink, error) {
	t.Helper()
	k := &sink{}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := NewFetcher(h, cfg, quiet).Fetch(ctx, Target{Model: m.id, Leaves: m.leaves, Missing: missing, Put: k.put}, providers)
	return k, err
}

func checkAll(t *testing.T, m *model, k *sink, idx []uint64) {
	t.Helper()
	if len(k.got) != len(idx) {
		t.Fatalf("fetched %d chunks, want %d", len(k.got), len(idx))
	}
	for _, i := range idx {
		if !bytes.Equal(k.got[i], m.chunks[i]) {
			t.Fatalf("chunk %d differs from the original", i)
		}
	}
}

func TestThreeSeedersShareTheLoad(t *testing.T) {
	hs := newNet(t, 4)
	m := newModel(t, 300)
	var srcs []*source
	for _, h := range hs[1:] {
		s := &source{m: m}
		srcs = append(srcs, s)
		NewServer(h, s, ServerConfig{}, quiet)
	}
	k, err := fetch(t, hs[0], m, all(300), Config{Window: 4, PerPeer: 2}, hs[1].ID(), hs[2].ID(), hs[3].ID())
	if err != nil {
		t.Fatalf("Fetch = %v", err)
	}
	checkAll(t, m, k, all(300))
	for i, s := range srcs {
		if got := s.served.Load(); got < 30 {
			t.Errorf("seeder %d served %d of 300 chunks, want at least 30 (a share of the load)", i, got)
		}
	}
}

func TestLyingPeerIsDropped(t *testing.T) {
	hs := newNet(t, 3)
	m := newModel(t, 100)
	liar, honest := &source{m: m, lie: true}, &source{m: m}
	NewServer(hs[1], liar, ServerConfig{}, quiet)
	NewServer(hs[2], honest, ServerConfig{}, quiet)
	k, err := fetch(t, hs[0], m, all(100), Config{Window: 4, PerPeer: 2}, hs[1].ID(), hs[2].ID())
	if err != nil {
		t.Fatalf("Fetch = %v", err)
	}
	checkAll(t, m, k, all(100))
	if got := liar.served.Load(); got > 2*4 {
		t.Errorf("liar served %d chunks, want it dropped after its first window(s)", got)
	}
}

func TestHangingPeerTimesOut(t *testing.T) {
	hs := newNet(t, 3)
	m := newModel(t, 40)
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	NewServer(hs[1], &source{m: m, hang: hang}, ServerConfig{}, quiet)
	NewServer(hs[2], &source{m: m}, ServerConfig{}, quiet)
	k, err := fetch(t, hs[0], m, all(40), Config{Window: 4, PerPeer: 1, StallTimeout: 300 * time.Millisecond}, hs[1].ID(), hs[2].ID())
	if err != nil {
		t.Fatalf("Fetch = %v", err)
	}
	checkAll(t, m, k, all(40))
}

func TestResumeFetchesOnlyMissing(t *testing.T) {
	hs := newNet(t, 2)
	m := newModel(t, 50)
	src := &source{m: m}
	NewServer(hs[1], src, ServerConfig{}, quiet)
	missing := []uint64{3, 17, 18, 49}
	k, err := fetch(t, hs[0], m, missing, Config{}, hs[1].ID())
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, m, k, missing)
	if got := src.served.Load(); got != int64(len(missing)) {
		t.Errorf("seeder served %d chunks, want exactly the %d missing", got, len(missing))
	}
}

func TestPartialSeedersCoverEachOther(t *testing.T) {
	hs := newNet(t, 3)
	m := newModel(t, 60)
	NewServer(hs[1], &source{m: m, has: func(i uint64) bool { return i%2 == 0 }}, ServerConfig{}, quiet)
	NewServer(hs[2], &source{m: m, has: func(i uint64) bool { return i%2 == 1 }}, ServerConfig{}, quiet)
	k, err := fetch(t, hs[0], m, all(60), Config{Window: 8}, hs[1].ID(), hs[2].ID())
	if err != nil {
		t.Fatalf("Fetch = %v", err)
	}
	checkAll(t, m, k, all(60))
}

func TestFailures(t *testing.T) {
	hs := newNet(t, 3)
	m := newModel(t, 20)
	NewServer(hs[1], &source{m: m, lie: true}, ServerConfig{}, quiet)
	// hs[2] answers with a hand-made frame over the cap.
	hs[2].SetStreamHandler(ID, func(s network.Stream) {
		var req Request
		wire.ReadFrame(s, MaxRequestSize, &req)
		wire.WriteRaw(s, make([]byte, 16)) // placeholder so the header below is read first
		s.Write([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
		s.Close()
	})
	if _, err := fetch(t, hs[0], m, all(20), Config{}, hs[1].ID()); !errors.Is(err, ErrNoProviders) {
		t.Errorf("Fetch from a liar only = %v, want ErrNoProviders", err)
	}
	if _, err := fetch(t, hs[0], m, all(20), Config{}, hs[2].ID()); !errors.Is(err, ErrNoProviders) {
		t.Errorf("Fetch from a garbage sender = %v, want ErrNoProviders", err)
	}
	NewServer(hs[1], &source{m: m}, ServerConfig{}, quiet)
	full := errors.New("no space left on device")
	err := NewFetcher(hs[0], Config{}, quiet).Fetch(t.Context(), Target{Model: m.id, Leaves: m.leaves, Missing: all(20), Put: func(uint64, []byte) error { return full }}, []peer.ID{hs[1].ID()})
	if !errors.Is(err, full) {
		t.Errorf("Fetch with a failing Put = %v, want %v", err, full)
	}
}

func TestFetchLeaves(t *testing.T) {
	hs := newNet(t, 3)
	m := newModel(t, 10)
	NewServer(hs[1], &source{m: m}, ServerConfig{}, quiet)
	leaves, err := FetchLeaves(t.Context(), hs[0], hs[1].ID(), m.id, 10, m.root[:])
	if err != nil || len(leaves) != 10 || leaves[3] != m.leaves[3] {
		t.Fatalf("FetchLeaves = %d leaves, %v", len(leaves), err)
	}
	bad := *m
	bad.leaves = append([][32]byte(nil), m.leaves...)
	bad.leaves[4][0] ^= 1
	NewServer(hs[2], &source{m: &bad}, ServerConfig{}, quiet)
	if _, err := FetchLeaves(t.Context(), hs[0], hs[2].ID(), m.id, 10, m.root[:]); !errors.Is(err, content.ErrLeaves) {
		t.Errorf("FetchLeaves(tampered) = %v, want ErrLeaves", err)
	}
	if _, err := FetchLeaves(t.Context(), hs[0], hs[1].ID(), [32]byte{9}, 10, m.root[:]); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("FetchLeaves(unknown model) = %v, want ErrUnknownModel", err)
	}
	if _, err := FetchLeaves(t.Context(), hs[0], hs[1].ID(), m.id, 11, m.root[:]); !errors.Is(err, content.ErrLeaves) {
		t.Errorf("FetchLeaves(wrong count) = %v, want ErrLeaves", err)
	}
}

// Close removes the server's handler: the model is no longer served.
func TestServerClose(t *testing.T) {
	hs := newNet(t, 2)
	m := newModel(t, 4)
	srv := NewServer(hs[1], &source{m: m}, ServerConfig{}, quiet)
	if _, err := FetchLeaves(t.Context(), hs[0], hs[1].ID(), m.id, 4, m.root[:]); err != nil {
		t.Fatalf("FetchLeaves before Close = %v", err)
	}
	srv.Close()
	srv.Close() // idempotent
	if _, err := FetchLeaves(t.Context(), hs[0], hs[1].ID(), m.id, 4, m.root[:]); err == nil {
		t.Errorf("FetchLeaves after Close = nil error, want the protocol unserved")
	}
}

func TestServerRejectsBadRequests(t *testing.T) {
	hs := newNet(t, 2)
	m := newModel(t, 4)
	NewServer(hs[1], &source{m: m}, ServerConfig{}, quiet)
	for _, req := range []Request{
		{Model: m.id[:], Indices: make([]uint64, MaxWindow+1)},
		{Model: m.id[:5], Indices: []uint64{0}},
		{Model: m.id[:], Leaves: true, Indices: []uint64{0}},
		{Model: m.id[:]},
	} {
		st, err := openRequest(t.Context(), hs[0], hs[1].ID(), &req, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		st.SetReadDeadline(time.Now().Add(5 * time.Second))
		var resp ChunkResponse
		if err := wire.ReadFrame(st, MaxChunkFrame, &resp); err == nil {
			t.Errorf("request %+v got an answer %+v, want the stream reset", req, resp)
		}
	}
}

func FuzzRequest(f *testing.F) {
	b, _ := wire.Marshal(&Request{Model: make([]byte, 32), Indices: []uint64{1, 2}})
	f.Add(b)
	b, _ = wire.Marshal(&ChunkResponse{Index: 3, Data: []byte("x")})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var req Request
		if wire.Unmarshal(b, &req) == nil && req.validate() == nil {
			if len(req.Model) != 32 || (!req.Leaves && len(req.Indices) > MaxWindow) {
				t.Fatalf("validate accepted %+v", req)
			}
		}
		var resp ChunkResponse
		_ = wire.Unmarshal(b, &resp)
		var lr LeavesResponse
		_ = wire.Unmarshal(b, &lr)
	})
}

func TestTransientFailuresAreRetried(t *testing.T) {
	hs := newNet(t, 2)
	m := newModel(t, 30)
	src := &source{m: m}
	srv := newServer(src, ServerConfig{}, quiet)
	var resets atomic.Int64
	hs[1].SetStreamHandler(ID, func(st network.Stream) {
		if resets.Add(1) <= 2 {
			st.Reset()
			return
		}
		srv.accept(st)
	})
	k, err := fetch(t, hs[0], m, all(30), Config{Window: 4, PerPeer: 1}, hs[1].ID())
	if err != nil {
		t.Fatalf("Fetch from a peer that refused two streams = %v, want success after retries", err)
	}
	checkAll(t, m, k, all(30))
}

// hoard keeps n chunk streams from h to seeder open for as long as the test runs: each asks for a
// window of chunks and never reads the answer; a stream the seeder resets is opened again at once.
func hoard(t *testing.T, h host.Host, seeder peer.ID, m *model, n int) {
	t.Helper()
	ctx := t.Context()
	idx := make([]uint64, MaxWindow)
	for i := range idx {
		idx[i] = uint64(i % len(m.chunks))
	}
	for range n {
		go func() {
			for ctx.Err() == nil {
				st, err := h.NewStream(ctx, seeder, ID)
				if err != nil {
					continue
				}
				if err := wire.WriteFrame(st, &Request{Model: m.id[:], Indices: idx}); err != nil {
					st.Reset()
					continue
				}
				// Probe with single bytes the server never reads; a write fails once the
				// stream is reset. The attacker reads nothing.
				for ctx.Err() == nil {
					if _, err := st.Write([]byte{0}); err != nil {
						break
					}
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
				st.Reset()
			}
		}()
	}
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHoardersDoNotStarveAFetch: three peers each hold as many never-read streams as the seeder
// allows one peer, more than it serves in all; an honest fetch still gets its share and completes.
func TestHoardersDoNotStarveAFetch(t *testing.T) {
	hs := newNet(t, 5)
	m := newModel(t, 40)
	srv := NewServer(hs[1], &source{m: m}, ServerConfig{MaxStreams: 6, MaxStreamsPerPeer: 3, IdleTimeout: time.Minute}, quiet)
	for _, h := range hs[2:] {
		hoard(t, h, hs[1].ID(), m, 3)
	}
	waitFor(t, "the hoarders to take every slot", func() bool { return srv.streams() == 6 })
	k, err := fetch(t, hs[0], m, all(40), Config{Window: 4, PerPeer: 2}, hs[1].ID())
	if err != nil {
		t.Fatalf("Fetch while three peers hoard streams = %v, want success", err)
	}
	checkAll(t, m, k, all(40))
}

// TestIdleReaderIsReset: a peer that asks for chunks and reads nothing loses its streams after
// the idle timeout, and a stream over the per-peer cap is refused before its request is read.
func TestIdleReaderIsReset(t *testing.T) {
	hs := newNet(t, 2)
	m := newModel(t, 8)
	src := &source{m: m}
	srv := NewServer(hs[1], src, ServerConfig{MaxStreams: 8, MaxStreamsPerPeer: 2, IdleTimeout: 200 * time.Millisecond}, quiet)
	var streams []network.Stream
	for range 2 {
		st, err := openRequest(t.Context(), hs[0], hs[1].ID(), &Request{Model: m.id[:], Indices: all(4)}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	waitFor(t, "two streams served", func() bool { return srv.streams() == 2 })
	// The refusal may reach the client while it still sends its request, or after.
	if st, err := openRequest(t.Context(), hs[0], hs[1].ID(), &Request{Model: m.id[:], Indices: []uint64{7}}, time.Second); err == nil {
		var resp ChunkResponse
		if err := wire.ReadFrame(st, MaxChunkFrame, &resp); err == nil {
			t.Errorf("third stream of a peer at its cap of 2 got %+v, want it reset", resp)
		}
	}
	if src.read7.Load() {
		t.Error("refusing a stream read its chunk from the source, want nothing read")
	}
	// Nobody reads the first two: the server resets them after the idle timeout.
	waitFor(t, "the idle streams reset", func() bool { return srv.streams() == 0 })
	for i, st := range streams {
		if _, err := io.ReadAll(st); err == nil {
			t.Errorf("idle stream %d ended cleanly, want it reset", i)
		}
	}
}

// TestMisbehaviourIsReported: a provider that sends bad chunks is reported to Target.Misbehaved;
// one that only stalls is dropped without being reported.
func TestMisbehaviourIsReported(t *testing.T) {
	hs := newNet(t, 4)
	m := newModel(t, 40)
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	NewServer(hs[1], &source{m: m, lie: true}, ServerConfig{}, quiet)
	NewServer(hs[2], &source{m: m, hang: hang}, ServerConfig{}, quiet)
	NewServer(hs[3], &source{m: m}, ServerConfig{}, quiet)
	var mu sync.Mutex
	reported := map[peer.ID]error{}
	k := &sink{}
	// The honest seeder joins only once the liar has been judged (through More), so the fetch
	// cannot finish before the liar has served anything, however the goroutines are scheduled.
	more := make(chan peer.ID, 1)
	err := NewFetcher(hs[0], Config{Window: 4, PerPeer: 1, StallTimeout: 300 * time.Millisecond}, quiet).Fetch(t.Context(), Target{
		Model: m.id, Leaves: m.leaves, Missing: all(40), Put: k.put, More: more,
		Misbehaved: func(p peer.ID, err error) {
			mu.Lock()
			defer mu.Unlock()
			if _, dup := reported[p]; dup {
				t.Errorf("peer %s reported twice", p)
			}
			reported[p] = err
			if p == hs[1].ID() {
				more <- hs[3].ID()
				close(more)
			}
		},
	}, []peer.ID{hs[1].ID(), hs[2].ID()})
	if err != nil {
		t.Fatalf("Fetch = %v", err)
	}
	checkAll(t, m, k, all(40))
	mu.Lock()
	defer mu.Unlock()
	if err, ok := reported[hs[1].ID()]; !ok || !errors.Is(err, ErrBadChunk) {
		t.Errorf("liar reported as %v (reported %v), want ErrBadChunk", err, ok)
	}
	if err, ok := reported[hs[2].ID()]; ok {
		t.Errorf("a stalling peer was reported as misbehaving: %v", err)
	}
	if len(reported) > 2 {
		t.Errorf("reported %d peers, want only the liar", len(reported))
	}
}

// TestManyHoardersDoNotStarveAFetch: more peers than the seeder has slots each hold one
// never-read stream, so no peer holds more than another; a stream that has sent nothing lately
// gives way to a newcomer, and an honest fetch completes.
func TestManyHoardersDoNotStarveAFetch(t *testing.T) {
	hs := newNet(t, 10)
	m := newModel(t, 40)
	srv := NewServer(hs[1], &source{m: m}, ServerConfig{MaxStreams: 6, MaxStreamsPerPeer: 3, IdleTimeout: 2 * time.Second}, quiet)
	for _, h := range hs[2:] {
		hoard(t, h, hs[1].ID(), m, 1)
	}
	waitFor(t, "the hoarders to take every slot", func() bool { return srv.streams() == 6 })
	k, err := fetch(t, hs[0], m, all(40), Config{Window: 4, PerPeer: 2}, hs[1].ID())
	if err != nil {
		t.Fatalf("Fetch while eight peers hoard one stream each = %v, want success", err)
	}
	checkAll(t, m, k, all(40))
}
