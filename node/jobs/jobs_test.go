package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/califusion/califusion/store"
)

func newManager(t *testing.T, st *store.Store) *Manager {
	t.Helper()
	m := NewManager(st, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { m.Close() })
	return m
}

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func waitState(t *testing.T, m *Manager, id, want string) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s, err := m.Status(id)
		if err == nil && s.State == want {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
	s, err := m.Status(id)
	t.Fatalf("Status(%s) = %+v, %v; want state %s", id, s, err, want)
	return s
}

func TestDoneFailedAndDedup(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	m := newManager(t, st)
	release := make(chan struct{})
	id, err := m.Start("fetch", "abc", "", func(ctx context.Context, report func(Progress)) error {
		report(Progress{BytesDone: 5, BytesTotal: 10, Peers: 2})
		<-release
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := m.Start("fetch", "abc", "", func(context.Context, func(Progress)) error { return nil })
	if again != id {
		t.Errorf("second Start on the same subject = %s, want the running job %s", again, id)
	}
	s := waitState(t, m, id, Running)
	for s.BytesDone != 5 {
		s, _ = m.Status(id)
	}
	if s.BytesTotal != 10 || s.Peers != 2 {
		t.Errorf("running status = %+v, want 5/10 bytes, 2 peers", s)
	}
	if got, ok := m.Running("fetch", "abc"); !ok || got != id {
		t.Errorf("Running(fetch, abc) = %q, %v; want %s, true", got, ok, id)
	}
	if _, ok := m.Running("fetch", "other"); ok {
		t.Errorf("Running(fetch, other) = true, want false")
	}
	close(release)
	if s := waitState(t, m, id, Done); s.BytesDone != 10 {
		t.Errorf("done status = %+v, want bytes_done 10", s)
	}
	if _, ok := m.Running("fetch", "abc"); ok {
		t.Errorf("Running(fetch, abc) after the job ended = true, want false")
	}

	fid, _ := m.Start("fetch", "def", "", func(context.Context, func(Progress)) error { return fmt.Errorf("no provider") })
	if s := waitState(t, m, fid, Failed); s.Error != "no provider" {
		t.Errorf("failed status error = %q, want %q", s.Error, "no provider")
	}
	if _, err := m.Status("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Status(nope) = %v, want ErrNotFound", err)
	}
}

func TestShutdownLeavesJobResumable(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	m := NewManager(st, slog.New(slog.DiscardHandler))
	id, _ := m.Start("fetch", "abc", "", func(ctx context.Context, report func(Progress)) error {
		<-ctx.Done()
		return ctx.Err()
	})
	m.Close()
	st.Close()

	st = openStore(t, dir)
	defer st.Close()
	m = newManager(t, st)
	un, err := m.Unfinished()
	if err != nil || len(un) != 1 || un[0].ID != id {
		t.Fatalf("Unfinished() = %+v, %v; want job %s", un, err, id)
	}
	got, _ := m.Start("fetch", "abc", id, func(context.Context, func(Progress)) error { return nil })
	if got != id {
		t.Errorf("resumed job ID = %s, want %s", got, id)
	}
	waitState(t, m, id, Done)
}

func TestCancelStoresCancelledAndIsNotResumed(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	m := NewManager(st, slog.New(slog.DiscardHandler))
	started := make(chan struct{})
	id, err := m.Start("fetch", "abc", "", func(ctx context.Context, report func(Progress)) error {
		report(Progress{BytesDone: 3, BytesTotal: 10, Peers: 1})
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	s, err := m.Cancel(t.Context(), id)
	if err != nil || s.State != Cancelled || s.BytesDone != 3 || s.Ended.IsZero() {
		t.Fatalf("Cancel(%s) = %+v, %v; want state cancelled, bytes_done 3, an end time", id, s, err)
	}
	if _, err := m.Cancel(t.Context(), id); !errors.Is(err, ErrFinished) {
		t.Errorf("Cancel(%s) again = %v, want ErrFinished", id, err)
	}
	if _, err := m.Cancel(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Cancel(nope) = %v, want ErrNotFound", err)
	}
	// A new job on the same subject gets a new ID.
	again, _ := m.Start("fetch", "abc", "", func(context.Context, func(Progress)) error { return nil })
	if again == id {
		t.Errorf("Start after cancel = %s, want a new job ID", again)
	}
	waitState(t, m, again, Done)
	m.Close()
	st.Close()

	st = openStore(t, dir)
	defer st.Close()
	m = newManager(t, st)
	if un, err := m.Unfinished(); err != nil || len(un) != 0 {
		t.Errorf("Unfinished() after restart = %+v, %v; want none (the cancelled job is not resumed)", un, err)
	}
	if s, err := m.Status(id); err != nil || s.State != Cancelled {
		t.Errorf("Status(%s) after restart = %+v, %v; want cancelled", id, s, err)
	}
}

func TestListNewestFirst(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	m := newManager(t, st)
	first, _ := m.Start("fetch", "a", "", func(context.Context, func(Progress)) error { return nil })
	waitState(t, m, first, Done)
	for s, _ := m.Status(first); !time.Now().UTC().After(s.Created); {
	} // distinct creation times
	release := make(chan struct{})
	defer close(release)
	second, _ := m.Start("fetch", "b", "", func(ctx context.Context, report func(Progress)) error {
		report(Progress{BytesDone: 1, BytesTotal: 2})
		<-release
		return nil
	})
	var got []Status
	waitFor(t, func() error {
		var err error
		if got, err = m.List(); err != nil {
			return err
		}
		if len(got) != 2 || got[0].ID != second || got[1].ID != first || got[0].State != Running || got[0].BytesDone != 1 || got[1].State != Done {
			return fmt.Errorf("List() = %+v; want the running %s (1 byte done) then the done %s", got, second, first)
		}
		return nil
	})
	if got[0].Kind != "fetch" || got[0].Subject != "b" || got[0].Created.IsZero() || !got[0].Ended.IsZero() || got[1].Ended.IsZero() {
		t.Errorf("List() = %+v; want kind, subject, start times, and an end time only on the ended job", got)
	}
}

func waitFor(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal(err)
}

// Prune forgets jobs that ended before the cutoff and keeps recent and unfinished ones;
// StartPruning prunes at once.
func TestPruneEndedJobs(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	now := time.Now().UTC()
	old := now.Add(-2 * Retention)
	for _, s := range []Status{
		{ID: "old-done", Kind: "fetch", Subject: "a", State: Done, Created: old, Ended: old},
		{ID: "old-failed", Kind: "fetch", Subject: "b", State: Failed, Created: old, Ended: old},
		{ID: "recent", Kind: "fetch", Subject: "c", State: Done, Created: now, Ended: now},
		{ID: "unfinished", Kind: "fetch", Subject: "d", State: Running, Created: old},
	} {
		if err := st.Put(store.JobKey(s.ID), s); err != nil {
			t.Fatal(err)
		}
	}
	m := newManager(t, st)
	n, err := m.Prune(now.Add(-Retention))
	if err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want the 2 old ended jobs", n, err)
	}
	for _, id := range []string{"old-done", "old-failed"} {
		if _, err := m.Status(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Status(%s) after Prune: %v, want ErrNotFound", id, err)
		}
	}
	list, err := m.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("List after Prune = %+v, %v; want recent and unfinished", list, err)
	}
	if n, _ := m.Prune(now.Add(-Retention)); n != 0 {
		t.Errorf("a second Prune deleted %d", n)
	}

	// StartPruning prunes as it starts: "recent" goes once it is older than keep.
	m.StartPruning(time.Hour, time.Nanosecond)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := m.Status("recent"); errors.Is(err, ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("StartPruning did not prune the ended job")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s, err := m.Status("unfinished"); err != nil || s.State != Running {
		t.Errorf("the unfinished job after pruning: %+v, %v", s, err)
	}
}
