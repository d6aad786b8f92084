package rounds

import (
	"context"
	"errors"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
)

// holdWait bounds how long a coordinator waits for the others to hear its round announcement and
// release their key shares (gossip reaches them in milliseconds; a partition takes longer).
var holdWait = 20 * time.Second

// holdBaseKey makes the key of a threshold version readable for the round lr opens on it: the
// other coordinators release their shares only to a coordinator that runs an announced round on
// the version (node/keys RoundShare, checked with their Runs), so the round is announced first,
// then the shares are collected into memory. A version whose key this node holds (a whole-key
// lineage, or a key still held) needs nothing. On failure the round is announced as failed.
func (s *Service) holdBaseKey(ctx context.Context, rec *catalog.Record, lr *liveRound) error {
	if s.deps.Keyring.Has(rec.ID) || !rec.Manifest.IsThreshold() {
		return nil
	}
	// Runs(version, this node) answers true from here on (the others learn it by gossip); the
	// round is not live yet, so no submission reaches it before its base is loaded.
	s.mu.Lock()
	s.holding[rec.ID]++
	s.opening[lr.r.ID] = make(chan struct{})
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.holding[rec.ID]--; s.holding[rec.ID] <= 0 {
			delete(s.holding, rec.ID)
		}
		s.mu.Unlock()
	}()
	s.announce(lr.r)
	hctx, cancel := context.WithTimeout(ctx, holdWait)
	defer cancel()
	var err error
	announced := time.Now()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		if err = s.deps.Keys.HoldForRound(hctx, rec, nil); err == nil {
			return nil
		}
		select {
		case <-hctx.Done():
		case <-time.After(wait):
			// The announcement may have been lost (receivers take a coordinator's rounds at a
			// bounded rate, and this one may have announced many lately): say it again, within
			// that rate.
			if time.Since(announced) >= 1500*time.Millisecond {
				s.announce(lr.r)
				announced = time.Now()
			}
			continue
		}
		break
	}
	lr.r.State, lr.r.Error = announce.RoundFailed, "the coordinator could not collect enough key shares of the base version"
	lr.r.Seq++
	s.announce(lr.r)
	var coded *apierr.Error
	if errors.As(err, &coded) {
		return coded
	}
	return apierr.Errorf(apierr.Unavailable, "collect the key shares of model %x for the round: %v", rec.ID[:8], err)
}

// opened ends the opening of round id (it is live, or its opening failed): trainers' submissions
// waiting for it go on.
func (s *Service) opened(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.opening[id]; ok {
		close(ch)
		delete(s.opening, id)
	}
}

// liveOrOpening returns the live round id, waiting for it while it is being opened: a round on a
// threshold version is announced before it is live (holdBaseKey), so a trainer may submit to it
// a moment early.
func (s *Service) liveOrOpening(ctx context.Context, id string) *liveRound {
	if lr := s.liveRound(id); lr != nil {
		return lr
	}
	s.mu.Lock()
	ch := s.opening[id]
	s.mu.Unlock()
	if ch == nil {
		return nil
	}
	t := time.NewTimer(holdWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-ctx.Done():
	case <-t.C:
	}
	return s.liveRound(id)
}
