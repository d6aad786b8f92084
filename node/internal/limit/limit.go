// Package limit keeps a token bucket per peer, bounding what any one peer may make the node do.
package limit

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// PerPeer is a token bucket per peer: burst events at once, then one every per. It tracks at most
// maxPeers peers; when that many are tracked it forgets those whose bucket has refilled (idle
// peers), and refuses a new peer if none has (a flood from many fresh peer IDs then costs the
// newcomers, not the peers already known).
type PerPeer struct {
	every    rate.Limit
	burst    int
	maxPeers int

	mu    sync.Mutex
	peers map[peer.ID]*rate.Limiter
}

// New allows each peer burst events at once and one more every per, tracking at most maxPeers.
func New(burst int, per time.Duration, maxPeers int) *PerPeer {
	return &PerPeer{every: rate.Every(per), burst: burst, maxPeers: maxPeers, peers: map[peer.ID]*rate.Limiter{}}
}

// Allow takes one token from p's bucket, reporting whether there was one.
func (l *PerPeer) Allow(p peer.ID) bool { return l.AllowAt(p, time.Now()) }

// AllowAt is Allow at the given time (tests move the clock).
func (l *PerPeer) AllowAt(p peer.ID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.peers[p]
	if !ok {
		if len(l.peers) >= l.maxPeers {
			for q, ql := range l.peers {
				if ql.TokensAt(now) >= float64(l.burst) {
					delete(l.peers, q)
				}
			}
			if len(l.peers) >= l.maxPeers {
				return false
			}
		}
		lim = rate.NewLimiter(l.every, l.burst)
		l.peers[p] = lim
	}
	return lim.AllowN(now, 1)
}
