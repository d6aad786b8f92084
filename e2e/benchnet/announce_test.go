package main

import (
	"testing"
	"time"
)

// TestPlanAnnounceStaysWithinAuthorLimit: with the default flags (30 nodes, 50/s for 5 s) every
// author stays within the per-author gossip limit, and the authors share the work evenly; one
// node at that rate would not (the limit would hold most announcements back).
func TestPlanAnnounceStaysWithinAuthorLimit(t *testing.T) {
	tests := []struct {
		nodes, rate int
		dur         time.Duration
		within      bool
	}{
		{30, 50, 5 * time.Second, true},
		{4, 8, time.Second, true},
		{1, 50, 5 * time.Second, false},
	}
	for _, tt := range tests {
		authors, per, within := planAnnounce(tt.nodes, tt.rate, tt.dur)
		if within != tt.within {
			t.Errorf("planAnnounce(%d, %d, %v) within the limit = %v (%d per author), want %v", tt.nodes, tt.rate, tt.dur, within, per, tt.within)
		}
		if want := int(tt.dur.Seconds()) * tt.rate; len(authors) != want {
			t.Errorf("planAnnounce(%d, %d, %v) plans %d models, want %d", tt.nodes, tt.rate, tt.dur, len(authors), want)
		}
		count := make([]int, tt.nodes)
		for _, a := range authors {
			count[a]++
		}
		for a, n := range count {
			if n < len(authors)/tt.nodes || n > per {
				t.Errorf("planAnnounce(%d, %d, %v): node %d publishes %d, want %d..%d", tt.nodes, tt.rate, tt.dur, a, n, len(authors)/tt.nodes, per)
			}
		}
	}
}
