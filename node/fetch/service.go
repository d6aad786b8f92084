package fetch

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/protocols/chunks"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/host"
)

// JobKind is the kind of a fetch job; its subject is the model's ModelID in lowercase hex.
// Both are persisted with the job, so a restarted node resumes the fetches it was running.
const JobKind = "fetch"

// DefaultProviderWait bounds how long a fetch waits for a first provider (a restarted node may
// still be rejoining the network), unless Config.ProviderWait says otherwise.
const DefaultProviderWait = 2 * time.Minute

// Config is the fetch service's configuration.
type Config struct {
	// Transfer configures the fetcher (window, requests per peer, stall timeout).
	Transfer config.Transfer
	// Serving is what the chunk server may spend: ChunkServing(cfg.P2P).
	Serving chunks.ServerConfig
	// Datadir is the node's datadir: Export refuses a path that resolves into it.
	Datadir string
	// ProviderWait bounds the wait for a first provider; 0 means DefaultProviderWait.
	ProviderWait time.Duration
	// Log is the service's logger (nil: discard).
	Log *slog.Logger
	// Metrics counts transfer bytes, chunks and fetch durations (nil: none).
	Metrics *metrics.Set
}

// Deps are the services the fetch service uses.
type Deps struct {
	Store *store.Store
	// Host serves chunks and fetches them; nil for a service that only reads what is held
	// (decrypt and export).
	Host      host.Host
	Chunks    *ChunkStore
	Catalog   Catalog
	Anchoring Anchoring
	Keys      Keys
	Jobs      Jobs
}

// Service serves this node's chunks, fetches models from their providers as resumable jobs, and
// decrypts complete, unlocked models.
type Service struct {
	cfg       Config
	log       *slog.Logger
	st        *store.Store
	host      host.Host
	chunks    *ChunkStore
	catalog   Catalog
	anchoring Anchoring
	keys      Keys
	jobs      Jobs
	fetcher   *chunks.Fetcher

	mu        sync.Mutex
	started   bool
	closed    bool
	server    *chunks.Server
	onFetched func(content.ModelID)
}

// OnFetched sets fn to be called after every fetch that completed a model (node/storage checks
// the storage cap then). fn must not block.
func (s *Service) OnFetched(fn func(content.ModelID)) {
	s.mu.Lock()
	s.onFetched = fn
	s.mu.Unlock()
}

func (s *Service) fetched(id content.ModelID) {
	s.mu.Lock()
	fn := s.onFetched
	s.mu.Unlock()
	if fn != nil {
		fn(id)
	}
}

// New returns a fetch service; it starts nothing.
func New(cfg Config, deps Deps) *Service {
	if cfg.ProviderWait <= 0 {
		cfg.ProviderWait = DefaultProviderWait
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg: cfg, log: log, st: deps.Store, host: deps.Host, chunks: deps.Chunks,
		catalog: deps.Catalog, anchoring: deps.Anchoring, keys: deps.Keys, jobs: deps.Jobs,
	}
	if deps.Host != nil {
		s.fetcher = chunks.NewFetcher(deps.Host, chunks.Config{
			Window: cfg.Transfer.Window, PerPeer: cfg.Transfer.PerPeer, StallTimeout: cfg.Transfer.StallTimeout.Duration,
		}, log)
	}
	return s
}

// ChunkServing is what the chunk server may spend: half of p2p.max_memory_mib, one chunk frame
// per stream, so MaxStreams streams at the largest chunk size fit in it (30 at the default 256
// MiB), and no more than DefaultMaxStreamsPerPeer of them to one peer.
func ChunkServing(cfg config.P2P) chunks.ServerConfig {
	budget := cfg.MaxMemoryMiB << 20 / 2
	return chunks.ServerConfig{
		MaxStreams:        max(4, int(budget/chunks.MaxChunkFrame)),
		MaxStreamsPerPeer: chunks.DefaultMaxStreamsPerPeer,
		IdleTimeout:       chunks.DefaultIdleTimeout,
	}
}

// Start serves chunks on the host and resumes the fetch jobs that were running when the node
// stopped (so start it once the catalog, providers and jobs are up).
func (s *Service) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("fetch service already started")
	}
	if s.closed {
		return errors.New("fetch service is closed")
	}
	s.started = true
	if s.host != nil {
		s.server = chunks.NewServer(s.host, s, s.cfg.Serving, s.log)
	}
	s.resumeFetches()
	return nil
}

// Close stops serving chunks. Running fetch jobs belong to the jobs manager (close it before the
// ChunkStore). It is safe to call more than once.
func (s *Service) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.server != nil {
		return s.server.Close()
	}
	return nil
}

// Fetch starts (or joins) the fetch job of a model and returns its ID. A model the catalog does
// not have is resolved from the network first (Catalog.Resolve); one nobody knows is refused
// with NotFound; under anchoring "require" a model whose anchor does not match
// its manifest is refused with Integrity before any job starts.
func (s *Service) Fetch(ctx context.Context, id content.ModelID) (string, error) {
	rec, err := s.catalog.Resolve(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", apierr.Errorf(apierr.NotFound, "model %s is not in this node's catalog", hex.EncodeToString(id[:]))
	}
	if err != nil {
		return "", err
	}
	if s.required() {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		state, err := s.anchoring.Check(cctx, rec.ID, rec.Signed)
		cancel()
		if state == calimero.StateInvalid {
			return "", &apierr.Error{Code: apierr.Integrity, Message: "the model's Calimero anchor does not match its manifest: refusing to fetch it", Data: fmt.Sprint(err)}
		}
	}
	return s.start(rec, "")
}

// WaitFetched fetches a model (or joins its running fetch) and waits until it is complete; a
// failed fetch is an Unavailable *apierr.Error carrying the job's error.
func (s *Service) WaitFetched(ctx context.Context, r *catalog.Record) error {
	job, err := s.start(r, "")
	if err != nil {
		return err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := s.jobs.Status(job)
		switch {
		case err != nil:
			return err
		case st.State == jobs.Done:
			return nil
		case st.State == jobs.Failed:
			return &apierr.Error{Code: apierr.Unavailable, Message: "fetching the round's model failed", Data: st.Error}
		case st.State == jobs.Cancelled:
			return apierr.Errorf(apierr.Conflict, "the fetch of the round's model (job %s) was cancelled: fetch it again", job)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Service) required() bool { return s.anchoring != nil && s.anchoring.Required() }

// start starts (or joins) the fetch job of rec and returns its ID.
func (s *Service) start(rec *catalog.Record, resumeID string) (string, error) {
	return s.jobs.Start(JobKind, hex.EncodeToString(rec.ID[:]), resumeID, func(ctx context.Context, report func(jobs.Progress)) error {
		began := time.Now()
		err := s.fetch(ctx, rec, report)
		s.cfg.Metrics.FetchDone(time.Since(began), err)
		return err
	})
}

// resumeFetches restarts the fetch jobs that were running when the node stopped.
func (s *Service) resumeFetches() {
	unfinished, err := s.jobs.Unfinished()
	if err != nil {
		s.log.Warn("list unfinished jobs", "err", err)
		return
	}
	for _, j := range unfinished {
		raw, err := hex.DecodeString(j.Subject)
		if j.Kind != JobKind || err != nil || len(raw) != 32 {
			continue
		}
		rec, err := s.catalog.Get(content.ModelID(raw))
		if err == nil {
			_, err = s.start(rec, j.ID)
		}
		if err != nil {
			s.log.Warn("resume fetch", "job", j.ID, "err", err)
		} else {
			s.log.Info("fetch resumed", "job", j.ID, "model", j.Subject)
		}
	}
}

// Leaves serves a model's leaf list (chunks.Source).
func (s *Service) Leaves(model [32]byte) ([]byte, error) {
	var leaves []byte
	if err := s.st.Get(store.LeavesKey(model), &leaves); err != nil {
		return nil, chunks.ErrUnknownModel
	}
	return leaves, nil
}

// ReadChunk serves a chunk this node holds (chunks.Source).
func (s *Service) ReadChunk(model [32]byte, i uint64, buf []byte) ([]byte, error) {
	if _, ok := s.chunks.get(model); !ok {
		rec, err := s.catalog.Get(model)
		if err != nil {
			return nil, chunks.ErrUnknownModel
		}
		// A model's blob is opened only to serve a chunk this node holds: any peer may ask for
		// any model in the catalog.
		if have, err := s.chunks.stored(model, rec.Manifest.Chunks); err != nil || !have.Has(i) {
			return nil, fmt.Errorf("%w: model %x chunk %d", errNoChunk, model[:6], i)
		}
		if _, err := s.chunks.prepare(model, layoutOf(rec.Manifest)); err != nil {
			return nil, err
		}
	}
	ct, err := s.chunks.read(model, i, buf)
	if err == nil {
		s.cfg.Metrics.ServedChunk(len(ct))
	}
	return ct, err
}

var _ chunks.Source = (*Service)(nil)
