package limit

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestPerPeer(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(3, time.Minute, 2)
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")
	for i := range 4 {
		if got := l.AllowAt(a, now); got != (i < 3) {
			t.Errorf("allow(a) #%d = %v, want %v", i, got, i < 3)
		}
	}
	if !l.AllowAt(b, now) {
		t.Errorf("allow(b) = false: one peer's burst limits another")
	}
	if l.AllowAt(c, now) {
		t.Errorf("allow(c) with the table full of busy peers = true, want false")
	}
	now = now.Add(3 * time.Minute) // a and b refill: they are forgotten for a newcomer
	if !l.AllowAt(c, now) {
		t.Errorf("allow(c) after the others went idle = false")
	}
	if !l.AllowAt(a, now) {
		t.Errorf("allow(a) after a minute = false")
	}
}
