package chunks

import (
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestEndgameDuplicatesTheLastChunksFirst(t *testing.T) {
	s := newScheduler(all(12))
	a := &peerState{id: peer.ID("a"), lacks: map[uint64]bool{}}
	b := &peerState{id: peer.ID("b"), lacks: map[uint64]bool{}}
	first, _ := s.next(6, a)
	second, _ := s.next(6, a)
	if !slices.Equal(first, []uint64{0, 1, 2, 3, 4, 5}) || !slices.Equal(second, []uint64{6, 7, 8, 9, 10, 11}) {
		t.Fatalf("queue handed out %v, %v; want 0-5 and 6-11", first, second)
	}
	// a has sent 0-2 and 6-7 when b runs dry.
	for _, i := range []uint64{0, 1, 2, 6, 7} {
		if !s.claim(i) {
			t.Fatalf("claim(%d) = false", i)
		}
		s.finish(i)
	}
	dup, _ := s.next(4, b)
	if want := []uint64{11, 10, 9, 8}; !slices.Equal(dup, want) {
		t.Errorf("endgame gave b %v, want %v: what a will send last, highest first", dup, want)
	}
	// Chunks already duplicated once are not handed out a third time.
	c := &peerState{id: peer.ID("c"), lacks: map[uint64]bool{}}
	if dup, _ := s.next(8, c); !slices.Equal(dup, []uint64{5, 4, 3}) {
		t.Errorf("endgame gave c %v, want [5 4 3]", dup)
	}
	if !s.stored(6) || s.stored(8) {
		t.Error("stored reports the wrong indices")
	}
}
