package fetch

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/protocols/chunks"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A fetch syncs its blob (and records the synced chunks as present) after flushEvery chunks or
// flushInterval, whichever comes first; a crash loses at most that much, fetched again on resume.
const (
	flushEvery    = 16
	flushInterval = time.Second
)

// fetch downloads every chunk of rec that this node lacks.
func (s *Service) fetch(ctx context.Context, rec *catalog.Record, report func(jobs.Progress)) error {
	man := rec.Manifest
	if s.required() {
		// Under "require" nothing is fetched before its anchor verifies; replicas may lag.
		if err := s.anchoring.WaitVerified(ctx, rec.ID, rec.Signed, s.cfg.ProviderWait); err != nil {
			return err
		}
	}
	cipherTotal := layoutOf(man).CipherSize()
	if _, err := s.chunks.prepare(rec.ID, layoutOf(man)); err != nil {
		return err
	}
	var missing []uint64
	have := s.chunks.bitmap(rec.ID)
	for i := uint64(0); i < man.Chunks; i++ {
		if !have.Has(i) {
			missing = append(missing, i)
		}
	}
	// bytes_done counts only durable chunks: what a crash right now would keep.
	report(jobs.Progress{BytesDone: cipherTotal - missingBytes(man, missing), BytesTotal: cipherTotal})
	if len(missing) == 0 {
		return nil
	}
	if s.host == nil {
		return errors.New("this node's fetch service has no libp2p host")
	}
	start := time.Now()
	providers, err := s.waitProviders(ctx, rec.ID)
	if err != nil {
		return err
	}
	providers = s.rankProviders(rec.ID, providers)
	leaves, err := s.leaves(ctx, rec, providers)
	if err != nil {
		return err
	}
	s.log.Info("fetching model", "model", hex.EncodeToString(rec.ID[:]), "chunks", len(missing), "providers", len(providers), "found_in", time.Since(start).Round(time.Millisecond))
	start = time.Now()

	var (
		mu        sync.Mutex
		unsynced  int
		lastFlush = time.Now()
		durable   = cipherTotal - missingBytes(man, missing)
		peers     int
		flushErr  error
		kick      = make(chan struct{}, 1)
		flusherWG sync.WaitGroup
		stopFlush = make(chan struct{})
	)
	// Syncing runs beside the transfer, so the network never waits for the disk's fsync.
	flusherWG.Add(1)
	go func() {
		defer flusherWG.Done()
		for {
			select {
			case <-stopFlush:
				return
			case <-kick:
			}
			err := s.chunks.flush(rec.ID)
			mu.Lock()
			if err != nil {
				flushErr = err
			} else {
				durable = s.chunks.heldBytes(rec.ID)
			}
			p := jobs.Progress{BytesDone: durable, BytesTotal: cipherTotal, Peers: peers}
			mu.Unlock()
			report(p)
		}
	}()
	put := func(i uint64, ct []byte) error {
		if err := s.chunks.write(rec.ID, i, ct); err != nil {
			return err
		}
		s.cfg.Metrics.FetchedChunk(len(ct))
		mu.Lock()
		defer mu.Unlock()
		if flushErr != nil {
			return flushErr
		}
		unsynced++
		if unsynced >= flushEvery || time.Since(lastFlush) >= flushInterval {
			unsynced, lastFlush = 0, time.Now()
			select {
			case kick <- struct{}{}:
			default:
			}
		}
		return nil
	}
	err = s.fetcher.Fetch(ctx, chunks.Target{
		Model: rec.ID, Leaves: leaves, Missing: missing, Put: put,
		Progress: func(_, _, active int) {
			mu.Lock()
			peers = active
			mu.Unlock()
		},
		Misbehaved: s.penalise,
	}, providers)
	close(stopFlush)
	flusherWG.Wait()
	// Whatever happened, keep the verified progress.
	if derr := s.chunks.drain(rec.ID); err == nil {
		err = derr
	}
	if ferr := s.chunks.flush(rec.ID); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if got := s.chunks.Count(rec.ID); got != man.Chunks {
		return fmt.Errorf("fetch ended with %d of %d chunks", got, man.Chunks)
	}
	took := time.Since(start)
	s.log.Info("model fetched", "model", hex.EncodeToString(rec.ID[:]), "bytes", cipherTotal, "providers", len(providers),
		"took", took.Round(time.Millisecond), "mb_per_s", int(float64(missingBytes(man, missing))/1e6/took.Seconds()))
	s.catalog.Provide(rec.ID) // now a seeder
	s.fetched(rec.ID)
	return nil
}

// waitProviders looks for providers, retrying with backoff for up to Config.ProviderWait.
func (s *Service) waitProviders(ctx context.Context, id content.ModelID) ([]peer.ID, error) {
	deadline := time.Now().Add(s.cfg.ProviderWait)
	wait := 250 * time.Millisecond
	for {
		if ps := s.catalog.Providers(ctx, id); len(ps) > 0 {
			return ps, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: no peer provided model %x within %v; connect to its publisher or a seeder", chunks.ErrNoProviders, id[:6], s.cfg.ProviderWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func missingBytes(man *content.Manifest, missing []uint64) uint64 {
	var n uint64
	for _, i := range missing {
		n += man.PlainLen(i) + content.Overhead
	}
	return n
}

// leaves returns the model's verified leaf list, from the store or from the first provider
// whose list matches the manifest's root.
func (s *Service) leaves(ctx context.Context, rec *catalog.Record, providers []peer.ID) ([][32]byte, error) {
	var raw []byte
	if err := s.st.Get(store.LeavesKey(rec.ID), &raw); err == nil {
		if l, err := content.LeavesFromBytes(raw); err == nil && content.CheckLeaves(l, rec.Manifest.Chunks, rec.Manifest.Root) == nil {
			return l, nil
		}
	}
	// Ask every provider at once and keep the first list that matches the root: one dead or
	// slow provider must not hold the fetch up.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		p      peer.ID
		leaves [][32]byte
		err    error
	}
	answers := make(chan answer, len(providers))
	for _, p := range providers {
		go func() {
			l, err := chunks.FetchLeaves(ctx, s.host, p, rec.ID, rec.Manifest.Chunks, rec.Manifest.Root)
			answers <- answer{p, l, err}
		}()
	}
	var errs []error
	for range providers {
		a := <-answers
		if a.err != nil {
			if chunks.Misbehaviour(a.err) {
				s.penalise(a.p, a.err)
			}
			errs = append(errs, a.err)
			continue
		}
		if err := s.st.Put(store.LeavesKey(rec.ID), content.LeavesToBytes(a.leaves)); err != nil {
			return nil, err
		}
		return a.leaves, nil
	}
	return nil, fmt.Errorf("no provider sent a leaf list matching the manifest: %w", errors.Join(errs...))
}

// penalise remembers that p served bad data, beyond this fetch (store.Penalty).
func (s *Service) penalise(p peer.ID, err error) {
	pen, perr := s.st.Penalise(p.String(), err.Error(), time.Now())
	if perr != nil {
		s.log.Warn("record provider penalty", "peer", p, "err", perr)
		return
	}
	s.log.Warn("provider penalised for bad data", "peer", p, "offences", pen.Offences, "until", pen.Until.Format(time.RFC3339), "err", err)
}

// rankProviders leaves out the providers under a penalty for bad data, unless only such
// providers hold the model: then they are tried (each chunk is verified, and a provider that
// lies again is dropped at once and penalised for longer).
func (s *Service) rankProviders(id content.ModelID, providers []peer.ID) []peer.ID {
	clean, penalised := splitPenalised(s.st, providers, time.Now())
	if len(penalised) > 0 {
		s.log.Info("penalised providers left out", "model", hex.EncodeToString(id[:]), "penalised", len(penalised), "others", len(clean))
	}
	if len(clean) == 0 {
		return penalised
	}
	return clean
}

// splitPenalised splits providers into those without an active penalty at now and those with
// one, keeping their order. A store error counts as no penalty.
func splitPenalised(st *store.Store, providers []peer.ID, now time.Time) (clean, penalised []peer.ID) {
	for _, p := range providers {
		if _, active, err := st.PenaltyOf(p.String(), now); err == nil && active {
			penalised = append(penalised, p)
		} else {
			clean = append(clean, p)
		}
	}
	return clean, penalised
}
