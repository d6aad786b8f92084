package catalog

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"time"

	catalogwire "github.com/califusion/califusion/protocols/catalog"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
)

// catalogResync is how often connected peers' catalogs are read again (gossip is the fast path;
// this catches what it missed), catalogResyncPeers how many randomly chosen peers are read each
// time (anti-entropy: what one peer has reaches every node within a few rounds without every
// node asking every peer), and catalogOverlap how far back each re-read reaches before the last.
// catalogResync is a variable so that tests can switch the resync off.
var catalogResync = 5 * time.Second

const (
	catalogResyncPeers = 3
	catalogOverlap     = 2 * time.Second
	// catalogFollowUp is when a newly connected peer's catalog is read a second time: a model
	// it published just after the first read, while the gossip mesh to it was still forming
	// (a heartbeat or two), arrives then rather than at the next random resync.
	catalogFollowUp = 1500 * time.Millisecond
)

// syncCatalogs reads the catalog of every peer this node connects to as soon as it is identified
// (a late joiner learns what came before it) and again catalogFollowUp later, and every
// catalogResync what a few connected peers added since the last read (a model announced while
// the gossip mesh was still forming is not missed; a re-read of a peer with nothing new costs a
// listing of IDs).
func (s *Service) syncCatalogs(ctx context.Context) {
	h := s.d.Host
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		s.log.Warn("subscribe to peer events", "err", err)
		return
	}
	defer sub.Close()
	tick := time.NewTicker(catalogResync)
	defer tick.Stop()
	for _, p := range h.Network().Peers() {
		s.bg.Go(func(ctx context.Context) { s.syncCatalog(ctx, p) })
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			peers := h.Network().Peers()
			mrand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
			for _, p := range peers[:min(len(peers), catalogResyncPeers)] {
				s.bg.Go(func(ctx context.Context) { s.syncCatalog(ctx, p) })
			}
		case ev := <-sub.Out():
			// At once, and once more when the gossip mesh has had time to form.
			p := ev.(event.EvtPeerIdentificationCompleted).Peer
			s.bg.Go(func(ctx context.Context) {
				s.syncCatalog(ctx, p)
				select {
				case <-ctx.Done():
				case <-time.After(catalogFollowUp):
					s.syncCatalog(ctx, p)
				}
			})
		}
	}
}

func (s *Service) syncCatalog(ctx context.Context, p peer.ID) {
	h := s.d.Host
	if protos, err := h.Peerstore().SupportsProtocols(p, catalogwire.ID); err != nil || len(protos) == 0 {
		return // not identified yet, or not a califusion node
	}
	s.mu.Lock()
	if s.syncing[p] {
		s.mu.Unlock()
		return
	}
	s.syncing[p] = true
	var since time.Time
	if last, ok := s.synced[p]; ok {
		since = last.Add(-catalogOverlap) // records land in a peer's store a little late
	}
	s.mu.Unlock()
	started := time.Now()
	// A sync admits at most CatalogSyncMax manifests from one peer (the rest come next time);
	// the listing is in the order the peer added them, so a parent comes before its children.
	// Refusals cost a signature check each, so the manifests looked at are bounded too.
	admitted, looked := 0, 0
	acc, ref, next, err := catalogwire.Sync(ctx, h, p, since, s.Known, func(b []byte) error {
		if admitted >= CatalogSyncMax || looked >= 4*CatalogSyncMax {
			return catalogwire.ErrEnough
		}
		looked++
		_, added, err := s.Add(b, "catalog")
		if added {
			admitted++
		}
		return err
	})
	s.mu.Lock()
	delete(s.syncing, p)
	if err == nil {
		if next.IsZero() { // a peer that does not report its clock: ours, with a margin for skew
			next = started.Add(-time.Minute)
		}
		s.synced[p] = next
	}
	s.mu.Unlock()
	if errors.Is(err, catalogwire.ErrEnough) {
		// Not marked as synced: the next sync asks since the same time and skips what is known.
		s.log.Info("catalog sync stopped at its bound: the rest is read next time", "peer", p, "manifests", acc, "refused", ref)
		return
	}
	if err != nil {
		s.log.Debug("catalog sync", "peer", p, "err", err)
		return
	}
	if acc+ref > 0 {
		s.log.Debug("catalog synced", "peer", p, "manifests", acc, "refused", ref)
	}
}
