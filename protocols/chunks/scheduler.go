package chunks

import (
	"cmp"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// scheduler hands out chunk indices to peer workers: first from the queue, then, once the queue
// is empty, duplicates of indices still in flight elsewhere (endgame work stealing).
type scheduler struct {
	mu       sync.Mutex
	queue    []uint64
	state    map[uint64]uint8           // 0 queued/in flight, 1 claimed (being stored), 2 done
	inflight map[uint64]map[peer.ID]int // index → peers fetching it (and how many windows)
	left     int
	changed  chan struct{}
	complete chan struct{} // closed when the last index is done
}

func newScheduler(missing []uint64) *scheduler {
	s := &scheduler{queue: append([]uint64(nil), missing...), state: map[uint64]uint8{}, inflight: map[uint64]map[peer.ID]int{}, left: len(missing), changed: make(chan struct{}), complete: make(chan struct{})}
	for _, i := range missing {
		s.state[i] = 0
	}
	return s
}

// next returns up to n indices for peer ps. With none to give it returns a channel that closes on
// the next change, or nil when this peer has nothing left to do.
func (s *scheduler) next(n int, ps *peerState) ([]uint64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.left == 0 {
		return nil, nil
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out, skipped []uint64
	for len(s.queue) > 0 && len(out) < n {
		i := s.queue[0]
		s.queue = s.queue[1:]
		if s.state[i] != 0 {
			continue
		}
		if ps.lacks[i] {
			skipped = append(skipped, i)
			continue
		}
		out = append(out, i)
	}
	s.queue = append(skipped, s.queue...)
	if len(out) == 0 {
		// Endgame: duplicate what is still in flight at one other peer. A peer sends a window in
		// the order asked, so take the highest indices, highest first: the copy and the original
		// meet in the middle instead of racing over the same chunks.
		var cand []uint64
		for i, peers := range s.inflight {
			if _, mine := peers[ps.id]; !mine && len(peers) == 1 && s.state[i] == 0 && !ps.lacks[i] {
				cand = append(cand, i)
			}
		}
		slices.SortFunc(cand, func(a, b uint64) int { return cmp.Compare(b, a) })
		out = cand[:min(n, len(cand))]
	}
	if len(out) == 0 {
		if len(skipped) == s.left && len(s.inflight) == 0 {
			return nil, nil // only chunks this peer lacks remain
		}
		return nil, s.changed
	}
	for _, i := range out {
		if s.inflight[i] == nil {
			s.inflight[i] = map[peer.ID]int{}
		}
		s.inflight[i][ps.id]++
	}
	return out, nil
}

// stored reports whether index i is already claimed or done (a late duplicate need not be hashed).
func (s *scheduler) stored(i uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state[i] != 0
}

// claim reserves index i for storing; false means another peer's copy won.
func (s *scheduler) claim(i uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state[i] != 0 {
		return false
	}
	s.state[i] = 1
	return true
}

// finish marks a claimed index done.
func (s *scheduler) finish(i uint64) {
	s.mu.Lock()
	s.state[i] = 2
	s.left--
	if s.left == 0 {
		close(s.complete)
	}
	s.mu.Unlock()
	s.wake()
}

// release ends a window of peer p: indices not done go back to the queue unless another
// window still has them.
func (s *scheduler) release(p peer.ID, idx []uint64) {
	s.mu.Lock()
	for _, i := range idx {
		peers := s.inflight[i]
		if peers[p]--; peers[p] <= 0 {
			delete(peers, p)
		}
		if len(peers) == 0 {
			delete(s.inflight, i)
			if s.state[i] == 0 {
				s.queue = append(s.queue, i)
			}
		}
	}
	s.mu.Unlock()
	s.wake()
}

func (s *scheduler) wake() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *scheduler) remaining() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.left
}
