package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// peerLimiter is a token bucket per peer: burst requests at once, then every per. It tracks at
// most maxPeers peers; when that many are tracked it forgets those whose bucket has refilled
// (idle peers), and refuses a new peer if none has (a flood from many fresh peer IDs then costs
// the newcomers, not the peers already known).
type peerLimiter struct {
	every    rate.Limit
	burst    int
	maxPeers int
	now      func() time.Time

	mu    sync.Mutex
	peers map[peer.ID]*rate.Limiter
}

// newPeerLimiter allows each peer burst events at once and one more every per.
func newPeerLimiter(burst int, per time.Duration, maxPeers int) *peerLimiter {
	return &peerLimiter{every: rate.Every(per), burst: burst, maxPeers: maxPeers, now: time.Now, peers: map[peer.ID]*rate.Limiter{}}
}

// allow takes one token from p's bucket, reporting whether there was one.
func (l *peerLimiter) allow(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
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
