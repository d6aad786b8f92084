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
	// The transfer starts with the first providers found; those the search finds later join it
	// (more). Ending the fetch ends the search.
	pctx, stopSearch := context.WithCancel(ctx)
	defer stopSearch()
	providers, more, err := s.waitProviders(pctx, rec.ID)
	if err != nil {
		return err
	}
	leaves, providers, err := s.leaves(ctx, rec, providers, more)
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
		More:       more,
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

// waitProviders starts a search for providers (ranked: see rankedProviders) and returns the first
// ones found, with the channel that brings the rest. A search that ends with none is started
// again, with backoff, for up to Config.ProviderWait.
func (s *Service) waitProviders(ctx context.Context, id content.ModelID) ([]peer.ID, <-chan peer.ID, error) {
	deadline := time.Now().Add(s.cfg.ProviderWait)
	wait := 250 * time.Millisecond
	for {
		more := s.rankedProviders(ctx, id)
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case p, ok := <-more:
			if ok {
				// Take what is already there (the announcers come at once), not waiting for more.
				ps := []peer.ID{p}
				for {
					select {
					case p, ok := <-more:
						if ok {
							ps = append(ps, p)
							continue
						}
					default:
					}
					return ps, more, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%w: no peer provided model %x within %v; connect to its publisher or a seeder", chunks.ErrNoProviders, id[:6], s.cfg.ProviderWait)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// rankedProviders streams the catalog's providers of id, leaving out those under a penalty for
// bad data unless the search ends without any other: then they are sent last (each chunk is
// verified, and a provider that lies again is dropped at once and penalised for longer).
func (s *Service) rankedProviders(ctx context.Context, id content.ModelID) <-chan peer.ID {
	out := make(chan peer.ID)
	in := s.catalog.ProvidersStream(ctx, id)
	go func() {
		defer close(out)
		var clean int
		var penalised []peer.ID
		send := func(p peer.ID) bool {
			select {
			case out <- p:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for p := range in {
			if _, active, err := s.st.PenaltyOf(p.String(), time.Now()); err == nil && active {
				penalised = append(penalised, p)
				continue
			}
			clean++
			if !send(p) {
				return
			}
		}
		if len(penalised) == 0 {
			return
		}
		if clean > 0 {
			s.log.Info("penalised providers left out", "model", hex.EncodeToString(id[:]), "penalised", len(penalised), "others", clean)
			return
		}
		for _, p := range penalised {
			if !send(p) {
				return
			}
		}
	}()
	return out
}

func missingBytes(man *content.Manifest, missing []uint64) uint64 {
	var n uint64
	for _, i := range missing {
		n += man.PlainLen(i) + content.Overhead
	}
	return n
}

// leaves returns the model's verified leaf list, from the store or from the first provider
// whose list matches the manifest's root, and the providers seen so far: those given and those
// more brought while the leaves were asked for.
func (s *Service) leaves(ctx context.Context, rec *catalog.Record, providers []peer.ID, more <-chan peer.ID) ([][32]byte, []peer.ID, error) {
	var raw []byte
	if err := s.st.Get(store.LeavesKey(rec.ID), &raw); err == nil {
		if l, err := content.LeavesFromBytes(raw); err == nil && content.CheckLeaves(l, rec.Manifest.Chunks, rec.Manifest.Root) == nil {
			return l, providers, nil
		}
	}
	// Ask every provider at once, and each new one as it is found, and keep the first list that
	// matches the root: one dead or slow provider must not hold the fetch up.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		p      peer.ID
		leaves [][32]byte
		err    error
	}
	answers := make(chan answer)
	var (
		seen    []peer.ID
		pending int
		errs    []error
	)
	ask := func(p peer.ID) {
		seen = append(seen, p)
		pending++
		go func() {
			l, err := chunks.FetchLeaves(ctx, s.host, p, rec.ID, rec.Manifest.Chunks, rec.Manifest.Root)
			select {
			case answers <- answer{p, l, err}:
			case <-ctx.Done():
			}
		}()
	}
	for _, p := range providers {
		ask(p)
	}
	for pending > 0 || more != nil {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case p, ok := <-more:
			if !ok {
				more = nil
				continue
			}
			ask(p)
		case a := <-answers:
			pending--
			if a.err != nil {
				if chunks.Misbehaviour(a.err) {
					s.penalise(a.p, a.err)
				}
				errs = append(errs, a.err)
				continue
			}
			if err := s.st.Put(store.LeavesKey(rec.ID), content.LeavesToBytes(a.leaves)); err != nil {
				return nil, nil, err
			}
			return a.leaves, seen, nil
		}
	}
	return nil, nil, fmt.Errorf("no provider sent a leaf list matching the manifest: %w", errors.Join(errs...))
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
