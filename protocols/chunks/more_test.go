package chunks

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// fetchMore runs a fetch of m with the initial providers and the More channel more, in the
// background; the result arrives on the returned channel.
func fetchMore(t *testing.T, f *Fetcher, m *model, k *sink, more <-chan peer.ID, misbehaved func(peer.ID, error), providers ...peer.ID) <-chan error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	done := make(chan error, 1)
	go func() {
		defer cancel()
		done <- f.Fetch(ctx, Target{Model: m.id, Leaves: m.leaves, Missing: all(len(m.chunks)), Put: k.put, More: more, Misbehaved: misbehaved}, providers)
	}()
	return done
}

// A fetch that starts with one slow provider takes in a second one sent on More (and ignores
// repeats of both), and finishes with chunks from each.
func TestMoreProvidersJoinARunningFetch(t *testing.T) {
	hs := newNet(t, 3)
	m := newModel(t, 60)
	slow, fast := &source{m: m, delay: 20 * time.Millisecond}, &source{m: m}
	NewServer(hs[1], slow, ServerConfig{}, quiet)
	NewServer(hs[2], fast, ServerConfig{}, quiet)
	more := make(chan peer.ID)
	k := &sink{}
	done := fetchMore(t, NewFetcher(hs[0], Config{Window: 2, PerPeer: 1}, quiet), m, k, more, nil, hs[1].ID())
	waitFor(t, "the slow provider to serve a chunk", func() bool { return slow.served.Load() > 0 })
	for _, p := range []peer.ID{hs[2].ID(), hs[1].ID(), hs[2].ID()} {
		select {
		case more <- p:
		case err := <-done:
			t.Fatalf("Fetch ended before the second provider joined: %v", err)
		}
	}
	close(more)
	if err := <-done; err != nil {
		t.Fatalf("Fetch = %v", err)
	}
	checkAll(t, m, k, all(60))
	if s, f := slow.served.Load(), fast.served.Load(); s == 0 || f == 0 {
		t.Errorf("the slow provider served %d chunks and the one from More %d; want both some", s, f)
	}
}

// A fetch with no provider yet waits for one on More; a fetch whose only provider was dropped
// waits too, while More is open.
func TestMoreProvidersRescueAFetch(t *testing.T) {
	hs := newNet(t, 3)
	m := newModel(t, 20)
	NewServer(hs[1], &source{m: m}, ServerConfig{}, quiet)
	NewServer(hs[2], &source{m: m, lie: true}, ServerConfig{}, quiet)
	f := NewFetcher(hs[0], Config{}, quiet)

	more := make(chan peer.ID, 1)
	k := &sink{}
	done := fetchMore(t, f, m, k, more, nil)
	more <- hs[1].ID()
	if err := <-done; err != nil {
		t.Fatalf("Fetch with no initial provider, then one on More = %v", err)
	}
	checkAll(t, m, k, all(20))

	more = make(chan peer.ID, 1)
	dropped := make(chan peer.ID, 1)
	k = &sink{}
	done = fetchMore(t, f, m, k, more, func(p peer.ID, _ error) { dropped <- p }, hs[2].ID())
	if p := <-dropped; p != hs[2].ID() {
		t.Fatalf("dropped %s, want the liar %s", p, hs[2].ID())
	}
	more <- hs[1].ID()
	if err := <-done; err != nil {
		t.Fatalf("Fetch whose liar was dropped, then an honest provider on More = %v", err)
	}
	checkAll(t, m, k, all(20))
}

// With More closed and no usable provider, the fetch fails with ErrNoProviders: with none at
// all, and once the only one (a liar) is dropped and More closes after it.
func TestMoreClosedWithoutProviders(t *testing.T) {
	hs := newNet(t, 2)
	m := newModel(t, 10)
	NewServer(hs[1], &source{m: m, lie: true}, ServerConfig{}, quiet)
	f := NewFetcher(hs[0], Config{}, quiet)

	more := make(chan peer.ID)
	close(more)
	if err := <-fetchMore(t, f, m, &sink{}, more, nil); !errors.Is(err, ErrNoProviders) {
		t.Errorf("Fetch with no provider and More closed = %v, want ErrNoProviders", err)
	}

	more = make(chan peer.ID)
	dropped := make(chan peer.ID, 1)
	done := fetchMore(t, f, m, &sink{}, more, func(p peer.ID, _ error) { dropped <- p }, hs[1].ID())
	<-dropped
	more <- hs[1].ID() // a dropped provider sent again is ignored
	close(more)
	if err := <-done; !errors.Is(err, ErrNoProviders) || !strings.Contains(err.Error(), hs[1].ID().String()) {
		t.Errorf("Fetch from a dropped liar, then More closed = %v, want ErrNoProviders naming the liar", err)
	}
}
