// Package custody makes a coordinator keep a copy of every version of the lineages it
// coordinates: the encrypted chunks of an aggregate exist at first only on the coordinator that
// published it, and a lineage must survive that coordinator (issue 16: "a coordinator can fail
// without stopping the network"). A custodian fetches each new version of such a lineage as soon
// as its catalog learns of it, and so becomes one more provider; it needs no key to do so.
package custody

import (
	"context"
	"encoding/hex"
	"log/slog"
	"sync"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Catalog lists the catalog, to find versions added while the node was down.
type Catalog interface {
	All() ([]*catalog.Record, error)
}

// Fetcher starts fetch jobs (the fetch service).
type Fetcher interface {
	// Complete reports whether every chunk of r is on this node.
	Complete(r *catalog.Record) bool
	// Fetch starts (or joins) the fetch job of a model and returns its ID.
	Fetch(ctx context.Context, id content.ModelID) (string, error)
}

// queueLen bounds the versions waiting to be fetched; past it, Added drops (the next start's
// scan of the catalog picks them up).
const queueLen = 256

// Service fetches the versions of the lineages this node coordinates.
type Service struct {
	self    peer.ID
	catalog Catalog
	fetcher Fetcher
	log     *slog.Logger

	queue  chan *catalog.Record
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a custodian for the coordinator self; it fetches nothing until Start.
func New(self peer.ID, cat Catalog, f Fetcher, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{self: self, catalog: cat, fetcher: f, log: log, queue: make(chan *catalog.Record, queueLen)}
}

// Start queues the versions already in the catalog that this node coordinates and lacks, and
// starts the worker that fetches them.
func (s *Service) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	recs, err := s.catalog.All()
	if err != nil {
		cancel()
		return err
	}
	s.wg.Go(func() { s.run(ctx) })
	for _, r := range recs {
		s.Added(r)
	}
	return nil
}

// Close stops the worker (fetch jobs it started run on in the fetch service). It is idempotent.
func (s *Service) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	return nil
}

// Added is told of every model the catalog adds: a version of a lineage that names this node as
// a coordinator is queued for fetching. It never blocks.
func (s *Service) Added(r *catalog.Record) {
	if !s.mine(r) {
		return
	}
	select {
	case s.queue <- r:
	default:
		s.log.Warn("custody queue full: version left for the next start", "model", hex.EncodeToString(r.ID[:]))
	}
}

// mine reports whether r belongs to a lineage this node coordinates (and did not publish
// itself: the publisher of a version holds its chunks already).
func (s *Service) mine(r *catalog.Record) bool {
	if pub, err := r.Manifest.PublisherID(); err == nil && pub == s.self {
		return false
	}
	return r.RootRecord().Manifest.Names(s.self)
}

func (s *Service) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-s.queue:
			if s.fetcher.Complete(r) {
				continue
			}
			job, err := s.fetcher.Fetch(ctx, r.ID)
			if err != nil {
				s.log.Warn("custody fetch", "model", hex.EncodeToString(r.ID[:]), "err", err)
				continue
			}
			s.log.Info("custody fetch started", "model", hex.EncodeToString(r.ID[:]), "job", job)
		}
	}
}
