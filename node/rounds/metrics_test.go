package rounds

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A round's judged updates move the updates counter by verdict and reason, its aggregate the
// rounds-aggregated counter, a training run the hook histogram; CountByState reads every state.
func TestRoundMetrics(t *testing.T) {
	n := newNode(t, config.RoleCoordinator, config.RoleTrainer)
	m := metrics.New(metrics.Build{})
	n.s.cfg.Metrics = m
	base, model, round := roundOn(t, n, OpenParams{MinUpdates: 2, Deadline: "10m", Rule: "fedavg", MaxSamples: 50})
	if by, err := n.s.CountByState(); err != nil || by[announce.RoundOpen] != 1 || by[announce.RoundDone] != 0 || len(by) != 4 {
		t.Fatalf("CountByState with one open round = %v, %v", by, err)
	}
	sybil := paidTrainer(t, n, model)
	st := &updates.Statement{Round: round, Samples: 1 << 40, SHA256: make([]byte, 32), Size: 1, Trainer: sybil.String(), Coordinator: n.self.String()}
	if got := n.s.decide(t.Context(), sybil, st); got == nil || got.Reason != "sample_count" {
		t.Fatalf("decide(2^40 samples) = %+v, want rejected sample_count", got)
	}
	for _, v := range []float64{1, 0} {
		if got := n.s.handleSubmit(t.Context(), paidTrainer(t, n, model), newSubmit(round, 10, encode(t, variant(t, base, func(float64) float64 { return v })))); got.Code != 0 {
			t.Fatalf("update = %+v, want accepted", got)
		}
	}
	closeRound(t, n, round)

	data := filepath.Join(t.TempDir(), "data.csv")
	os.WriteFile(data, []byte("0,0,0,1,0\n1,0,0,0,1\n0,1,0,0,2\n0,0,1,0,0\n"), 0o600)
	_, _, round2 := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m", Rule: "fedavg"})
	if _, err := n.s.Train(t.Context(), TrainParams{RoundID: round2, Data: data, Hook: "builtin", Epochs: 1}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"accepted", testutil.ToFloat64(m.Updates.WithLabelValues(metrics.VerdictAccepted, "")), 2},
		{"rejected sample_count", testutil.ToFloat64(m.Updates.WithLabelValues(metrics.VerdictRejected, "sample_count")), 1},
		{"rounds aggregated", testutil.ToFloat64(m.RoundsAggregated), 1},
		{"builtin hook runs", float64(metrics.SampleCount(m.HookDuration, "builtin")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if by, err := n.s.CountByState(); err != nil || by[announce.RoundDone] != 1 || by[announce.RoundOpen] != 1 {
		t.Errorf("CountByState after one round done and one open = %v, %v", by, err)
	}
}
