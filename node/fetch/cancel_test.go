package fetch

import (
	"errors"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/protocols/apierr"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// TestWaitFetchedCancelled: a fetch cancelled while it waits for providers ends cancelled, and
// WaitFetched returns a Conflict instead of waiting forever.
func TestWaitFetchedCancelled(t *testing.T) {
	src := newFixture(t, nil)
	rec, _ := src.publish(t, randomModel(2*content.MinChunkSize), "m", false)
	mn, err := mocknet.WithNPeers(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	g := newFixture(t, mn.Hosts()[0])
	g.svc.cfg.ProviderWait = time.Hour
	g.catalog.add(rec)
	done := make(chan error, 1)
	go func() { done <- g.svc.WaitFetched(t.Context(), rec) }()
	var running []jobs.Status
	for deadline := time.Now().Add(10 * time.Second); len(running) == 0; {
		list, err := g.jobs.List()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			if s.State == jobs.Running {
				running = append(running, s)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("List() = %+v, want a running fetch", list)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s, err := g.jobs.Cancel(t.Context(), running[0].ID); err != nil || s.State != jobs.Cancelled {
		t.Fatalf("Cancel = %+v, %v; want cancelled", s, err)
	}
	var ae *apierr.Error
	if err := <-done; !errors.As(err, &ae) || ae.Code != apierr.Conflict {
		t.Errorf("WaitFetched(cancelled) = %v, want a Conflict", err)
	}
}
