package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/protocols/chunks"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// flushEvery is how many fetched chunks are written between syncs of the blob; a crash loses at
// most this many (they are fetched again on resume).
const flushEvery = 8

// providerWait bounds how long a fetch waits for a first provider (a restarted node may still be
// rejoining the network).
var providerWait = 2 * time.Minute

// startFetch starts (or joins) the fetch job of a model and returns its ID.
func (m *models) startFetch(id content.ModelID, resumeID string) (string, error) {
	rec, err := m.get(id)
	if err != nil {
		return "", err
	}
	return m.n.jobs.Start("fetch", hex.EncodeToString(id[:]), resumeID, func(ctx context.Context, report func(jobs.Progress)) error {
		return m.fetch(ctx, rec, report)
	})
}

// resumeFetches restarts the fetch jobs that were running when the node stopped.
func (m *models) resumeFetches() {
	unfinished, err := m.n.jobs.Unfinished()
	if err != nil {
		m.log.Warn("list unfinished jobs", "err", err)
		return
	}
	for _, j := range unfinished {
		raw, err := hex.DecodeString(j.Subject)
		if j.Kind != "fetch" || err != nil || len(raw) != 32 {
			continue
		}
		if _, err := m.startFetch(content.ModelID(raw), j.ID); err != nil {
			m.log.Warn("resume fetch", "job", j.ID, "err", err)
		} else {
			m.log.Info("fetch resumed", "job", j.ID, "model", j.Subject)
		}
	}
}

// fetch downloads every chunk of rec that this node lacks.
func (m *models) fetch(ctx context.Context, rec *record, report func(jobs.Progress)) error {
	man := rec.Manifest
	cipherTotal := layoutOf(man).CipherSize()
	if _, err := m.chunks.prepare(rec.ID, layoutOf(man)); err != nil {
		return err
	}
	var missing []uint64
	have := m.chunks.bitmap(rec.ID)
	for i := uint64(0); i < man.Chunks; i++ {
		if !have.Has(i) {
			missing = append(missing, i)
		}
	}
	report(jobs.Progress{BytesDone: cipherTotal - missingBytes(man, missing), BytesTotal: cipherTotal})
	if len(missing) == 0 {
		return nil
	}
	providers, err := m.waitProviders(ctx, rec.ID)
	if err != nil {
		return err
	}
	leaves, err := m.leaves(ctx, rec, providers)
	if err != nil {
		return err
	}

	var (
		mu       sync.Mutex
		unsynced int
		done     = cipherTotal - missingBytes(man, missing)
	)
	put := func(i uint64, ct []byte) error {
		if err := m.chunks.write(rec.ID, i, ct); err != nil {
			return err
		}
		mu.Lock()
		unsynced++
		done += uint64(len(ct))
		flush := unsynced >= flushEvery
		if flush {
			unsynced = 0
		}
		mu.Unlock()
		if flush {
			return m.chunks.flush(rec.ID)
		}
		return nil
	}
	err = m.fetcher.Fetch(ctx, chunks.Target{
		Model: rec.ID, Leaves: leaves, Missing: missing, Put: put,
		Progress: func(_, _, peers int) {
			mu.Lock()
			d := done
			mu.Unlock()
			report(jobs.Progress{BytesDone: d, BytesTotal: cipherTotal, Peers: peers})
		},
	}, providers)
	// Whatever happened, keep the verified progress.
	if ferr := m.chunks.flush(rec.ID); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if got := m.chunks.count(rec.ID); got != man.Chunks {
		return fmt.Errorf("fetch ended with %d of %d chunks", got, man.Chunks)
	}
	m.log.Info("model fetched", "model", hex.EncodeToString(rec.ID[:]), "bytes", cipherTotal, "providers", len(providers))
	m.background(func(ctx context.Context) { m.provide(ctx, rec.ID) }) // now a seeder
	return nil
}

// waitProviders looks for providers, retrying with backoff for up to providerWait.
func (m *models) waitProviders(ctx context.Context, id content.ModelID) ([]peer.ID, error) {
	deadline := time.Now().Add(providerWait)
	wait := 250 * time.Millisecond
	for {
		if ps := m.providers(ctx, id); len(ps) > 0 {
			return ps, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: no peer provided model %x within %v; connect to its publisher or a seeder", chunks.ErrNoProviders, id[:6], providerWait)
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
func (m *models) leaves(ctx context.Context, rec *record, providers []peer.ID) ([][32]byte, error) {
	var raw []byte
	if err := m.n.store.Get(store.LeavesKey(rec.ID), &raw); err == nil {
		if l, err := content.LeavesFromBytes(raw); err == nil && content.CheckLeaves(l, rec.Manifest.Chunks, rec.Manifest.Root) == nil {
			return l, nil
		}
	}
	var errs []error
	for _, p := range providers {
		l, err := chunks.FetchLeaves(ctx, m.n.host, p, rec.ID, rec.Manifest.Chunks, rec.Manifest.Root)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := m.n.store.Put(store.LeavesKey(rec.ID), content.LeavesToBytes(l)); err != nil {
			return nil, err
		}
		return l, nil
	}
	return nil, fmt.Errorf("no provider sent a leaf list matching the manifest: %w", errors.Join(errs...))
}
