package catalog

import (
	"context"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
)

// ModelCID is the DHT content ID of a model: a raw CIDv1 over its ModelID as a SHA-256 multihash.
func ModelCID(id content.ModelID) cid.Cid {
	mh, _ := multihash.Encode(id[:], multihash.SHA2_256)
	return cid.NewCidV1(cid.Raw, mh)
}

// Provide announces in the DHT that this node serves the given models. Keys wait up to
// ProvideBatch in a queue, so that a burst of publishes reaches the DHT provider together and
// shares its lookups (one per keyspace region instead of one per key). Without a Provider it
// does nothing.
func (s *Service) Provide(ids ...content.ModelID) {
	if len(ids) == 0 || s.d.Provider == nil {
		return
	}
	s.provideMu.Lock()
	for _, id := range ids {
		s.providePending = append(s.providePending, ModelCID(id).Hash())
	}
	s.provideMu.Unlock()
	select {
	case s.provideKick <- struct{}{}:
	default:
	}
}

// ProvideBatch is how long provided keys wait for others to join them.
const ProvideBatch = 500 * time.Millisecond

// provideLoop hands queued keys to the DHT provider, in batches.
func (s *Service) provideLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.provideKick:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(ProvideBatch):
		}
		s.provideMu.Lock()
		keys := s.providePending
		s.providePending = nil
		s.provideMu.Unlock()
		if err := s.d.Provider.StartProviding(false, keys...); err != nil {
			s.log.Debug("provide models", "models", len(keys), "err", err)
			s.cfg.Metrics.ProvideFailed()
		}
	}
}

// provideAll provides every complete model at start (the provider's list of keys lives in
// memory; it reprovides them from then on).
func (s *Service) provideAll(context.Context) {
	if s.d.Holdings == nil {
		return
	}
	recs, _ := s.All()
	var ids []content.ModelID
	for _, r := range recs {
		if s.d.Holdings.Held(r.ID, r.Manifest.Chunks) == r.Manifest.Chunks { // opens no blob
			ids = append(ids, r.ID)
		}
	}
	s.Provide(ids...)
}

// Providers finds peers that serve model id: DHT providers, announcers and connected peers that
// answer with its leaves are all tried. It waits for the DHT query, briefly (2 s) when providers
// are already known, for up to 10 s otherwise; ProvidersStream does not wait.
func (s *Service) Providers(ctx context.Context, id content.ModelID) []peer.ID {
	var out []peer.ID
	for p := range s.providers(ctx, id, 2*time.Second) {
		out = append(out, p)
	}
	return out
}

// ProvidersStream is Providers as they are found: id's connected publisher and the peers that
// announced it at once, then the DHT's providers as the query finds them. The channel closes when
// the DHT query ends (after ProvidersQuery at most), when MaxProviders were sent, or with ctx;
// it is buffered for MaxProviders, so a reader may stop reading at any time (cancel ctx to stop
// the query).
func (s *Service) ProvidersStream(ctx context.Context, id content.ModelID) <-chan peer.ID {
	return s.providers(ctx, id, ProvidersQuery)
}

// ProvidersQuery bounds a DHT provider query.
const ProvidersQuery = 10 * time.Second

// providers streams id's providers; the DHT query runs for up to ProvidersQuery, or for up to
// known when providers are known before it starts.
func (s *Service) providers(ctx context.Context, id content.ModelID, known time.Duration) <-chan peer.ID {
	self, h := s.cfg.Self, s.d.Host
	out := make(chan peer.ID, max(s.cfg.MaxProviders, 0))
	seen := map[peer.ID]bool{self: true}
	add := func(p peer.ID) bool {
		if !seen[p] && len(seen)-1 < s.cfg.MaxProviders {
			seen[p] = true
			out <- p // never blocks: at most MaxProviders are sent
		}
		return len(seen)-1 < s.cfg.MaxProviders
	}
	// The connected publisher first: announcers are any peers, and MaxProviders of them would
	// otherwise leave no room for it.
	if rec, err := s.Get(id); err == nil && h != nil {
		if pub, err := rec.Manifest.PublisherID(); err == nil && h.Network().Connectedness(pub) == network.Connected {
			add(pub)
		}
	}
	s.mu.Lock()
	for p := range s.announced[id] {
		add(p)
	}
	s.mu.Unlock()
	if s.d.Routing == nil || len(seen)-1 >= s.cfg.MaxProviders {
		close(out)
		return out
	}
	// The DHT is asked in any case (it finds seeders nobody announced).
	wait := ProvidersQuery
	if len(seen) > 1 {
		wait = min(wait, known)
	}
	go func() {
		defer close(out)
		fctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		for ai := range s.d.Routing.FindProvidersAsync(fctx, ModelCID(id), s.cfg.MaxProviders) {
			if ai.ID == self || seen[ai.ID] {
				continue
			}
			if h != nil {
				h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
			}
			if !add(ai.ID) {
				return
			}
		}
	}()
	return out
}
