package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// memSource is a catalog in memory: manifests named by their hash, added one millisecond apart.
type memSource struct {
	mu    sync.Mutex
	order [][32]byte
	at    map[[32]byte]time.Time
	byID  map[[32]byte][]byte
	asked map[[32]byte]bool // manifests asked for
}

func newMemSource(start time.Time, manifests ...[]byte) *memSource {
	s := &memSource{at: map[[32]byte]time.Time{}, byID: map[[32]byte][]byte{}, asked: map[[32]byte]bool{}}
	for i, m := range manifests {
		id := sha256.Sum256(m)
		s.order = append(s.order, id)
		s.at[id] = start.Add(time.Duration(i) * time.Millisecond)
		s.byID[id] = m
	}
	return s
}

func (s *memSource) Added(since time.Time, fn func([32]byte, time.Time) bool) error {
	for _, id := range s.order {
		if !s.at[id].Before(since) && !fn(id, s.at[id]) {
			break
		}
	}
	return nil
}

func (s *memSource) Manifest(id [32]byte) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked[id] = true
	m, ok := s.byID[id]
	return m, ok
}

func pair(t *testing.T) (client, server host.Host) {
	t.Helper()
	mn, err := mocknet.FullMeshConnected(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	return mn.Hosts()[0], mn.Hosts()[1]
}

// acceptOK accepts manifests that start with "ok" and records them.
func acceptOK(got *[]string) func([]byte) error {
	return func(m []byte) error {
		if !bytes.HasPrefix(m, []byte("ok")) {
			return errors.New("bad signature")
		}
		*got = append(*got, string(m))
		return nil
	}
}

func TestSyncFetchesOnlyUnknownManifestsAndVerifiesEach(t *testing.T) {
	a, b := pair(t)
	src := newMemSource(time.Now().Add(-time.Second), []byte("ok known"), []byte("ok one"), []byte("forged"), []byte("ok two"), bytes.Repeat([]byte("x"), MaxManifestSize+1))
	NewServer(b, src, ServerConfig{}, slog.New(slog.DiscardHandler))
	known := func(id [32]byte) bool { return id == sha256.Sum256([]byte("ok known")) }
	var got []string
	acc, ref, next, err := Sync(t.Context(), a, b.ID(), time.Time{}, known, acceptOK(&got))
	if err != nil || acc != 2 || ref != 1 {
		t.Fatalf("Sync = %d accepted, %d refused, %v; want 2, 1, nil", acc, ref, err)
	}
	if len(got) != 2 || got[0] != "ok one" || got[1] != "ok two" {
		t.Errorf("accepted %q, want the two valid unknown manifests", got)
	}
	if len(src.asked) != 4 || src.asked[sha256.Sum256([]byte("ok known"))] {
		t.Errorf("the client asked for %d manifests, want the 4 it did not know", len(src.asked))
	}
	if next.IsZero() {
		t.Error("Sync returned no clock to resume from")
	}
	// Asking again since that clock lists nothing and fetches nothing.
	clear(src.asked)
	acc, ref, _, err = Sync(t.Context(), a, b.ID(), next, func([32]byte) bool { return false }, acceptOK(&got))
	if err != nil || acc+ref != 0 || len(src.asked) != 0 {
		t.Errorf("a re-read with nothing new = %d accepted, %d refused, %d asked for, %v; want nothing", acc, ref, len(src.asked), err)
	}
}

func TestSyncPagesALongListing(t *testing.T) {
	listLimit = 2
	t.Cleanup(func() { listLimit = 0 })
	a, b := pair(t)
	var all [][]byte
	for _, m := range []string{"ok 1", "ok 2", "ok 3", "ok 4", "ok 5"} {
		all = append(all, []byte(m))
	}
	NewServer(b, newMemSource(time.Now().Add(-time.Second), all...), ServerConfig{}, slog.New(slog.DiscardHandler))
	var got []string
	seen := map[[32]byte]bool{}
	known := func(id [32]byte) bool { return seen[id] }
	acc, _, _, err := Sync(t.Context(), a, b.ID(), time.Time{}, known, func(m []byte) error {
		seen[sha256.Sum256(m)] = true
		return acceptOK(&got)(m)
	})
	if err != nil || acc != 5 {
		t.Fatalf("Sync over pages of 2 = %d accepted, %v; want all 5", acc, err)
	}
}

func TestSyncRefusesBadAnswers(t *testing.T) {
	for name, answer := range map[string][]Entry{
		"a listing entry with a manifest": {{ID: make([]byte, 32), Manifest: []byte("ok")}},
		"a short ID":                      {{ID: []byte{1, 2}}},
	} {
		t.Run(name, func(t *testing.T) {
			a, b := pair(t)
			b.SetStreamHandler(ID, func(s network.Stream) {
				defer s.Close()
				var req Request
				wire.ReadFrame(s, MaxRequestSize, &req)
				for _, e := range answer {
					wire.WriteFrame(s, &e)
				}
				wire.WriteFrame(s, &Entry{Done: true})
			})
			_, _, _, err := Sync(t.Context(), a, b.ID(), time.Time{}, func([32]byte) bool { return false }, func([]byte) error { return nil })
			if !errors.Is(err, ErrBadAnswer) {
				t.Errorf("Sync = %v, want ErrBadAnswer", err)
			}
		})
	}
}

func TestSyncRefusesUnrequestedManifests(t *testing.T) {
	a, b := pair(t)
	wanted, other := []byte("ok wanted"), []byte("ok other")
	id, otherID := sha256.Sum256(wanted), sha256.Sum256(other)
	b.SetStreamHandler(ID, func(s network.Stream) {
		defer s.Close()
		var req Request
		wire.ReadFrame(s, MaxRequestSize, &req)
		if len(req.Want) == 0 {
			wire.WriteFrame(s, &Entry{ID: id[:]})
			wire.WriteFrame(s, &Entry{ID: otherID[:]})
		} else {
			wire.WriteFrame(s, &Entry{Manifest: []byte("ok smuggled")})
			wire.WriteFrame(s, &Entry{Manifest: wanted})
		}
		wire.WriteFrame(s, &Entry{Done: true, Now: time.Now().UnixMilli()})
	})
	var got []string
	acc, ref, _, err := Sync(t.Context(), a, b.ID(), time.Time{}, func([32]byte) bool { return false }, acceptOK(&got))
	if err != nil || acc != 1 || ref != 1 || got[0] != "ok wanted" {
		t.Errorf("Sync = %d accepted %q, %d refused, %v; want only the wanted manifest", acc, got, ref, err)
	}
}

func TestSyncRefusesOversizedFrame(t *testing.T) {
	a, b := pair(t)
	b.SetStreamHandler(ID, func(s network.Stream) {
		var req Request
		wire.ReadFrame(s, MaxRequestSize, &req)
		wire.WriteRaw(s, make([]byte, MaxManifestSize+100))
		s.Close()
	})
	if _, _, _, err := Sync(t.Context(), a, b.ID(), time.Time{}, func([32]byte) bool { return false }, func([]byte) error { return nil }); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Errorf("Sync from a peer sending an oversized frame = %v, want ErrFrameTooLarge", err)
	}
}

func TestServerRefusesBadRequests(t *testing.T) {
	for name, req := range map[string]Request{
		"too many wanted": {Want: make([][]byte, MaxWant+1)},
		"a short ID":      {Want: [][]byte{{1}}},
		"negative since":  {Since: -1},
	} {
		t.Run(name, func(t *testing.T) {
			if err := req.validate(); !errors.Is(err, ErrBadRequest) {
				t.Errorf("validate = %v, want ErrBadRequest", err)
			}
		})
	}
}

func FuzzEntry(f *testing.F) {
	b, _ := wire.Marshal(&Entry{Manifest: []byte("m")})
	f.Add(b)
	b, _ = wire.Marshal(&Entry{ID: make([]byte, 32)})
	f.Add(b)
	f.Add([]byte{0xa1, 0x02, 0xf5})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Entry
		if wire.Unmarshal(b, &e) != nil {
			return
		}
		again, err := wire.Marshal(&e)
		if err != nil {
			t.Fatalf("Marshal(%+v) = %v", e, err)
		}
		var e2 Entry
		if err := wire.Unmarshal(again, &e2); err != nil || e2.Done != e.Done || e2.More != e.More || e2.Now != e.Now ||
			!bytes.Equal(e2.Manifest, e.Manifest) || !bytes.Equal(e2.ID, e.ID) {
			t.Fatalf("round trip of %+v = %+v, %v", e, e2, err)
		}
	})
}

func FuzzRequest(f *testing.F) {
	b, _ := wire.Marshal(&Request{Since: 1})
	f.Add(b)
	b, _ = wire.Marshal(&Request{Want: [][]byte{make([]byte, 32)}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if wire.Unmarshal(b, &r) != nil || r.validate() != nil {
			return
		}
		if len(r.Want) > MaxWant || r.Since < 0 {
			t.Fatalf("validate accepted %+v", r)
		}
		for _, id := range r.Want {
			if len(id) != 32 {
				t.Fatalf("validate accepted a %d-byte ID", len(id))
			}
		}
	})
}

// Manifests reach accept in the order the server added them, and ErrEnough ends the sync there.
func TestSyncInOrderAndStopsWhenEnough(t *testing.T) {
	a, b := pair(t)
	var ms [][]byte
	for _, s := range []string{"ok parent", "ok child", "ok grandchild", "ok late"} {
		ms = append(ms, []byte(s))
	}
	src := newMemSource(time.Now().Add(-time.Second), ms...)
	NewServer(b, src, ServerConfig{}, slog.New(slog.DiscardHandler))
	var got []string
	_, _, _, err := Sync(t.Context(), a, b.ID(), time.Time{}, func([32]byte) bool { return false }, func(m []byte) error {
		if len(got) == 3 {
			return ErrEnough
		}
		got = append(got, string(m))
		return nil
	})
	if !errors.Is(err, ErrEnough) {
		t.Errorf("Sync with a bound of 3 = %v, want ErrEnough", err)
	}
	if want := []string{"ok parent", "ok child", "ok grandchild"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("accepted %q, want %q in that order", got, want)
	}
}

// A peer over its request rate is reset before its request is read: the server does not wait
// for the rest of a request that has only begun, and never consults its catalog.
func TestRateLimitedPeerResetBeforeRequestRead(t *testing.T) {
	a, b := pair(t)
	var over atomic.Bool
	var calls atomic.Int32
	allow := func(p peer.ID) bool {
		calls.Add(1)
		return p != a.ID() || !over.Load()
	}
	src := newMemSource(time.Now().Add(-time.Second), []byte("ok one"))
	NewServer(b, src, ServerConfig{Allow: allow}, slog.New(slog.DiscardHandler))
	syncAll := func() error {
		_, _, _, err := Sync(t.Context(), a, b.ID(), time.Time{}, func([32]byte) bool { return false }, func([]byte) error { return nil })
		return err
	}

	over.Store(true)
	ended := make(chan error, 1)
	go func() {
		st, err := a.NewStream(t.Context(), b.ID(), ID)
		if err != nil { // an eager protocol negotiation may see the reset here
			ended <- err
			return
		}
		defer st.Reset()
		// The first byte of a length prefix; a lazy negotiation may see the reset here.
		if _, err = st.Write([]byte{0x80}); err == nil {
			_, err = st.Read(make([]byte, 1))
		}
		ended <- err
	}()
	select {
	case err := <-ended:
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("a stream over the rate limit ended with %v, want it reset", err)
		}
	case <-time.After(StreamTimeout):
		t.Fatal("the server is waiting for the request of a peer over its rate")
	}
	if err := syncAll(); err == nil {
		t.Errorf("Sync over the rate limit = nil, want an error")
	}
	src.mu.Lock()
	n := len(src.asked)
	src.mu.Unlock()
	if n != 0 {
		t.Errorf("manifests looked up for a peer over its rate = %d, want 0", n)
	}
	if calls.Load() < 2 {
		t.Errorf("Allow ran %d times for 2 streams, want once a stream", calls.Load())
	}

	over.Store(false)
	if err := syncAll(); err != nil {
		t.Errorf("Sync within the rate limit = %v, want it served", err)
	}
}

// Close removes the server's handler: the catalog is no longer served.
func TestCloseRemovesHandler(t *testing.T) {
	a, b := pair(t)
	srv := NewServer(b, newMemSource(time.Now(), []byte("ok one")), ServerConfig{}, slog.New(slog.DiscardHandler))
	syncAll := func() error {
		_, _, _, err := Sync(t.Context(), a, b.ID(), time.Time{}, func([32]byte) bool { return false }, func([]byte) error { return nil })
		return err
	}
	if err := syncAll(); err != nil {
		t.Fatalf("Sync before Close = %v", err)
	}
	srv.Close()
	srv.Close() // idempotent
	if err := syncAll(); err == nil {
		t.Errorf("Sync after Close = nil, want an error")
	}
}

// Manifests asks for manifests by ID: what the server knows comes back, what it does not is
// absent, and a manifest that was not asked for is counted as refused, never accepted.
func TestManifestsByID(t *testing.T) {
	a, b := pair(t)
	known, unknown := []byte("ok known"), []byte("ok unknown")
	src := newMemSource(time.Now(), known)
	NewServer(b, src, ServerConfig{}, slog.New(slog.DiscardHandler))
	var got []string
	acc, ref, err := Manifests(t.Context(), a, b.ID(), [][32]byte{sha256.Sum256(known), sha256.Sum256(unknown)}, acceptOK(&got))
	if err != nil || acc != 1 || ref != 0 || len(got) != 1 || got[0] != "ok known" {
		t.Errorf("Manifests = %d accepted %q, %d refused, %v; want the known manifest only", acc, got, ref, err)
	}

	liar, lb := pair(t)
	lb.SetStreamHandler(ID, func(s network.Stream) {
		defer s.Close()
		var req Request
		wire.ReadFrame(s, MaxRequestSize, &req)
		wire.WriteFrame(s, &Entry{Manifest: []byte("ok something else")})
		wire.WriteFrame(s, &Entry{Done: true})
	})
	got = nil
	acc, ref, err = Manifests(t.Context(), liar, lb.ID(), [][32]byte{sha256.Sum256(known)}, acceptOK(&got))
	if err != nil || acc != 0 || ref != 1 || len(got) != 0 {
		t.Errorf("Manifests from a liar = %d accepted %q, %d refused, %v; want 0 accepted, 1 refused", acc, got, ref, err)
	}

	if _, _, err := Manifests(t.Context(), a, b.ID(), make([][32]byte, MaxWant+1), acceptOK(&got)); !errors.Is(err, ErrBadRequest) {
		t.Errorf("Manifests(%d IDs) = %v, want ErrBadRequest", MaxWant+1, err)
	}
}

// FuzzManifestsAnswer feeds arbitrary bytes to the client as a by-ID answer: it never panics,
// and it passes on only a manifest whose hash is the ID it asked for.
func FuzzManifestsAnswer(f *testing.F) {
	wanted := []byte("ok wanted")
	id := sha256.Sum256(wanted)
	for _, e := range []Entry{{Manifest: wanted}, {Manifest: []byte("ok other")}, {ID: id[:]}, {Done: true}} {
		b, _ := wire.Marshal(&e)
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x01, 0x40})
	mn, err := mocknet.FullMeshConnected(2)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { mn.Close() })
	a, b := mn.Hosts()[0], mn.Hosts()[1]
	var answer atomic.Pointer[[]byte]
	b.SetStreamHandler(ID, func(s network.Stream) {
		defer s.Close()
		var req Request
		wire.ReadFrame(s, MaxRequestSize, &req)
		wire.WriteRaw(s, *answer.Load())
		wire.WriteFrame(s, &Entry{Done: true})
	})
	f.Fuzz(func(t *testing.T, raw []byte) {
		answer.Store(&raw)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		Manifests(ctx, a, b.ID(), [][32]byte{id}, func(m []byte) error {
			if sha256.Sum256(m) != id {
				t.Fatalf("Manifests passed on %q, whose hash is not the ID asked for", m)
			}
			return nil
		})
	})
}
