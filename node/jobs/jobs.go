// Package jobs runs a node's long work (model fetches, later training) in the background and
// keeps each job's state in the store, so `job_status` answers across restarts and unfinished
// jobs resume when the node starts again.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/califusion/califusion/store"
)

// States of a job.
const (
	Queued    = "queued"
	Running   = "running"
	Done      = "done"
	Failed    = "failed"
	Cancelled = "cancelled" // stopped by Cancel; never resumed (a fetch keeps its verified chunks)
)

// ErrNotFound is returned for an unknown job ID.
var ErrNotFound = errors.New("job not found")

// ErrFinished is returned by Cancel for a job that has already ended.
var ErrFinished = errors.New("job already ended")

// Status is a job's persisted state.
type Status struct {
	ID         string    `cbor:"1,keyasint"`
	Kind       string    `cbor:"2,keyasint"` // e.g. "fetch"
	Subject    string    `cbor:"3,keyasint"` // e.g. the model ID
	State      string    `cbor:"4,keyasint"`
	BytesDone  uint64    `cbor:"5,keyasint"`
	BytesTotal uint64    `cbor:"6,keyasint"`
	Peers      int       `cbor:"7,keyasint"`
	Error      string    `cbor:"8,keyasint,omitempty"`
	Created    time.Time `cbor:"9,keyasint"`
	Updated    time.Time `cbor:"10,keyasint"`
	Ended      time.Time `cbor:"11,keyasint"` // zero while queued or running
}

// Progress is what a running job reports.
type Progress struct {
	BytesDone, BytesTotal uint64
	Peers                 int
}

// Func does a job's work, reporting progress; it must return when ctx ends.
type Func func(ctx context.Context, report func(Progress)) error

// Manager runs jobs and persists their status.
type Manager struct {
	st  *store.Store
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	live      map[string]*Status // running or queued jobs, updated in memory, flushed periodically
	bySubj    map[string]string  // kind/subject → running job ID, so a second request joins the first
	flushed   map[string]time.Time
	cancels   map[string]context.CancelFunc // running job ID → its cancel
	done      map[string]chan struct{}      // running job ID → closed once its final state is stored
	cancelled map[string]bool               // running job IDs Cancel was called for
}

// NewManager returns a manager over st; it starts nothing.
func NewManager(st *store.Store, log *slog.Logger) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{st: st, log: log, ctx: ctx, cancel: cancel,
		live: map[string]*Status{}, bySubj: map[string]string{}, flushed: map[string]time.Time{},
		cancels: map[string]context.CancelFunc{}, done: map[string]chan struct{}{}, cancelled: map[string]bool{}}
}

// Unfinished lists persisted jobs that were queued or running when the node last stopped.
func (m *Manager) Unfinished() ([]Status, error) {
	var out []Status
	err := m.st.Scan(store.JobPrefix(), func(_ store.Key, decode func(any) error) error {
		var s Status
		if err := decode(&s); err != nil {
			return err
		}
		if s.State == Queued || s.State == Running {
			out = append(out, s)
		}
		return nil
	})
	return out, err
}

// Start runs fn as a job of kind on subject and returns its ID. If the same kind of job on the
// same subject is already running, its ID is returned instead. resumeID, when not empty, reuses
// a persisted job's ID (resume after restart).
func (m *Manager) Start(kind, subject, resumeID string, fn Func) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return "", errors.New("node is shutting down")
	}
	key := kind + "/" + subject
	if id, ok := m.bySubj[key]; ok {
		return id, nil
	}
	id := resumeID
	if id == "" {
		var b [8]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	now := time.Now().UTC()
	s := &Status{ID: id, Kind: kind, Subject: subject, State: Running, Created: now, Updated: now}
	if err := m.st.Put(store.JobKey(id), s); err != nil {
		return "", fmt.Errorf("record job: %w", err)
	}
	ctx, cancel := context.WithCancel(m.ctx)
	m.live[id] = s
	m.bySubj[key] = id
	m.cancels[id] = cancel
	m.done[id] = make(chan struct{})
	m.wg.Add(1)
	go m.run(ctx, id, key, fn)
	return id, nil
}

func (m *Manager) run(ctx context.Context, id, key string, fn Func) {
	defer m.wg.Done()
	err := fn(ctx, func(p Progress) { m.progress(id, p) })
	m.mu.Lock()
	s := m.live[id]
	cancelled := m.cancelled[id]
	m.cancels[id]()
	done := m.done[id]
	delete(m.live, id)
	delete(m.bySubj, key)
	delete(m.flushed, id)
	delete(m.cancels, id)
	delete(m.done, id)
	delete(m.cancelled, id)
	final := *s
	m.mu.Unlock()
	defer close(done)
	final.Updated = time.Now().UTC()
	final.Ended = final.Updated
	switch {
	case err == nil:
		final.State = Done
		final.BytesDone = final.BytesTotal
	case cancelled && errors.Is(err, context.Canceled):
		// Only a job that ended because it was cancelled: one whose own error came first keeps it.
		final.State = Cancelled
		m.log.Info("job cancelled", "job", id, "kind", final.Kind, "subject", final.Subject)
	case m.ctx.Err() != nil:
		// Shutdown: leave it running in the store so the next start resumes it.
		final.State = Running
		final.Ended = time.Time{}
	default:
		final.State = Failed
		final.Error = err.Error()
		m.log.Warn("job failed", "job", id, "kind", final.Kind, "subject", final.Subject, "err", err)
	}
	if perr := m.st.Put(store.JobKey(id), &final); perr != nil {
		m.log.Warn("record job result", "job", id, "err", perr)
	}
}

func (m *Manager) progress(id string, p Progress) {
	m.mu.Lock()
	s, ok := m.live[id]
	if !ok {
		m.mu.Unlock()
		return
	}
	s.BytesDone, s.BytesTotal, s.Peers, s.Updated = p.BytesDone, p.BytesTotal, p.Peers, time.Now().UTC()
	flush := time.Since(m.flushed[id]) > time.Second
	snap := *s
	if flush {
		m.flushed[id] = time.Now()
	}
	m.mu.Unlock()
	if flush {
		m.st.Put(store.JobKey(id), &snap) // best effort: the live copy answers while running
	}
}

// Status returns a job's state: live if running, else as persisted.
func (m *Manager) Status(id string) (Status, error) {
	m.mu.Lock()
	if s, ok := m.live[id]; ok {
		out := *s
		m.mu.Unlock()
		return out, nil
	}
	m.mu.Unlock()
	var s Status
	if err := m.st.Get(store.JobKey(id), &s); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Status{}, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return Status{}, err
	}
	return s, nil
}

// Running returns the ID of the job of kind on subject that is running now, if there is one.
func (m *Manager) Running(kind, subject string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.bySubj[kind+"/"+subject]
	return id, ok
}

// List returns every job, live or persisted, newest first.
func (m *Manager) List() ([]Status, error) {
	var out []Status
	m.mu.Lock()
	live := make(map[string]Status, len(m.live))
	for id, s := range m.live {
		live[id] = *s
	}
	m.mu.Unlock()
	err := m.st.Scan(store.JobPrefix(), func(_ store.Key, decode func(any) error) error {
		var s Status
		if err := decode(&s); err != nil {
			return err
		}
		if l, ok := live[s.ID]; ok {
			s = l
			delete(live, s.ID)
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, s := range live { // started between the snapshot and the scan
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Cancel stops a running job and waits (until ctx ends) for it to return; its final state,
// Cancelled, is stored and it is not resumed at the next start. An unknown job is ErrNotFound, a
// job that already ended ErrFinished (with its status).
func (m *Manager) Cancel(ctx context.Context, id string) (Status, error) {
	m.mu.Lock()
	cancel, ok := m.cancels[id]
	done := m.done[id]
	if ok {
		m.cancelled[id] = true
		cancel()
	}
	m.mu.Unlock()
	if !ok {
		s, err := m.Status(id)
		if err != nil {
			return s, err
		}
		return s, fmt.Errorf("%w: %s is %s", ErrFinished, id, s.State)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return Status{}, ctx.Err()
	}
	return m.Status(id)
}

// Retention is how long an ended job's status is kept: job_status and job_list answer for a job
// until Retention after it ended, then Prune forgets it (a node running for months would
// otherwise keep, and scan, every fetch it ever made).
const Retention = 30 * 24 * time.Hour

// PruneInterval is how often StartPruning prunes.
const PruneInterval = 24 * time.Hour

// Prune deletes the stored status of every job that ended before cutoff and returns how many it
// deleted. Queued and running jobs are never pruned.
func (m *Manager) Prune(cutoff time.Time) (int, error) {
	var old []store.Key
	err := m.st.Scan(store.JobPrefix(), func(k store.Key, decode func(any) error) error {
		var s Status
		if err := decode(&s); err != nil {
			return err
		}
		if !s.Ended.IsZero() && s.Ended.Before(cutoff) {
			old = append(old, append(store.Key(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range old {
		if err := m.st.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(old), nil
}

// StartPruning prunes the jobs that ended more than keep ago now and then every interval, until
// Close.
func (m *Manager) StartPruning(interval, keep time.Duration) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if n, err := m.Prune(time.Now().Add(-keep)); err != nil {
				m.log.Warn("prune ended jobs", "err", err)
			} else if n > 0 {
				m.log.Info("pruned ended jobs", "count", n, "ended_before", time.Now().Add(-keep).UTC().Format(time.RFC3339))
			}
			select {
			case <-m.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Close cancels every job and waits for them to return.
func (m *Manager) Close() error {
	m.cancel()
	m.wg.Wait()
	return nil
}
