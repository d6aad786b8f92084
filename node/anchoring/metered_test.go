package anchoring_test

import (
	"context"
	"errors"
	"testing"

	"github.com/califusion/califusion/node/anchoring"
	"github.com/califusion/califusion/node/anchoring/anchoringtest"
	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// With metrics, the service's Calimero calls are timed by operation, failed calls counted, and
// each anchor result counted by operation and state (a missing anchor is an answer, not a failed
// call).
func TestAnchoringMetrics(t *testing.T) {
	fake := anchoringtest.NewFake()
	m := metrics.New(metrics.Build{})
	s := anchoring.NewWith("require", fake, nil)
	s.SetMetrics(m)
	ctx := context.Background()
	a, b := anchoredModel(t), anchoredModel(t)
	if err := s.Put(ctx, a.Signed); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Check(ctx, a.ID, a.Signed); st != calimero.StateVerified {
		t.Fatalf("Check(anchored) = %q", st)
	}
	if st, _ := s.Check(ctx, b.ID, b.Signed); st != calimero.StateMissing {
		t.Fatalf("Check(unanchored) = %q", st)
	}
	fake.SetErr(errors.New("merod down"))
	if err := s.Put(ctx, b.Signed); err == nil {
		t.Fatal("Put succeeded with merod down")
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"put ok", testutil.ToFloat64(m.AnchorResult.WithLabelValues("put", "ok")), 1},
		{"put error", testutil.ToFloat64(m.AnchorResult.WithLabelValues("put", "error")), 1},
		{"get verified", testutil.ToFloat64(m.AnchorResult.WithLabelValues("get", "verified")), 1},
		{"get missing", testutil.ToFloat64(m.AnchorResult.WithLabelValues("get", "missing")), 1},
		{"put call errors", testutil.ToFloat64(m.CalimeroCallErrors.WithLabelValues("put")), 1},
		{"get call errors", testutil.ToFloat64(m.CalimeroCallErrors.WithLabelValues("get")), 0},
		{"put latencies", float64(metrics.SampleCount(m.CalimeroCallDuration, "put")), 2},
		{"get latencies", float64(metrics.SampleCount(m.CalimeroCallDuration, "get")), 2},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// Anchoring off: SetMetrics leaves nothing to observe and nothing breaks.
	off := anchoring.NewWith("off", nil, nil)
	off.SetMetrics(m)
	if off.On() {
		t.Error("SetMetrics turned anchoring on")
	}
}
