package metrics

import (
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// fakeSources answers every scrape-time interface with fixed values.
type fakeSources struct {
	models int
	jobs   map[string]int
	rounds map[string]int
	peers  map[string]int
	blobs  int64
}

func (f *fakeSources) Count() int                            { return f.models }
func (f *fakeSources) Active() map[string]int                { return f.jobs }
func (f *fakeSources) CountByState() (map[string]int, error) { return f.rounds, nil }
func (f *fakeSources) PeersByRole() map[string]int           { return f.peers }
func (f *fakeSources) BlobBytes() (int64, error)             { return f.blobs, nil }

func newRegistered(t *testing.T, src *fakeSources) (*Set, *prometheus.Registry) {
	t.Helper()
	s := New(Build{Version: "v9.9.9", Revision: "abc123", GoVersion: "go1.x"})
	if src != nil {
		s.Observe(Sources{Catalog: src, Jobs: src, Rounds: src, Peers: src, Blobs: src})
	}
	reg := prometheus.NewPedanticRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	return s, reg
}

// families gathers reg into name → family.
func families(t *testing.T, reg prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labelNames(mf *dto.MetricFamily) string {
	if len(mf.Metric) == 0 {
		return ""
	}
	var names []string
	for _, l := range mf.Metric[0].Label {
		names = append(names, l.GetName())
	}
	return strings.Join(names, ",")
}

// Every collector is registered under its Prometheus name, with its type, its labels and a Help
// string; the pedantic registry also checks consistency.
func TestCollectorsNamesTypesLabels(t *testing.T) {
	s, reg := newRegistered(t, &fakeSources{models: 3, jobs: map[string]int{"fetch": 2}, rounds: map[string]int{"open": 1, "done": 4},
		peers: map[string]int{"trainer": 2, "unknown": 1}, blobs: 4096})
	// Touch the vectors that have no pre-initialised children.
	s.Update(false, "norm")
	s.Anchor("get", "verified")
	s.KeyRelease("payment_used")
	s.AggregateAccuracy.Set(0.5)
	want := map[string]struct {
		typ    dto.MetricType
		labels string
	}{
		"califusion_transfer_in_bytes_total":          {dto.MetricType_COUNTER, ""},
		"califusion_transfer_out_bytes_total":         {dto.MetricType_COUNTER, ""},
		"califusion_chunks_fetched_total":             {dto.MetricType_COUNTER, ""},
		"califusion_chunks_served_total":              {dto.MetricType_COUNTER, ""},
		"califusion_fetch_duration_seconds":           {dto.MetricType_HISTOGRAM, "result"},
		"califusion_updates_total":                    {dto.MetricType_COUNTER, "reason,verdict"},
		"califusion_aggregate_accuracy_ratio":         {dto.MetricType_GAUGE, ""},
		"califusion_rounds_aggregated_total":          {dto.MetricType_COUNTER, ""},
		"califusion_hook_duration_seconds":            {dto.MetricType_HISTOGRAM, "hook"},
		"califusion_payments_total":                   {dto.MetricType_COUNTER, "result"},
		"califusion_payments_amount_base_units_total": {dto.MetricType_COUNTER, ""},
		"califusion_payments_fees_base_units_total":   {dto.MetricType_COUNTER, ""},
		"califusion_key_releases_total":               {dto.MetricType_COUNTER, "result"},
		"califusion_anchor_results_total":             {dto.MetricType_COUNTER, "operation,state"},
		"califusion_icp_call_duration_seconds":        {dto.MetricType_HISTOGRAM, "operation"},
		"califusion_icp_call_errors_total":            {dto.MetricType_COUNTER, "operation"},
		"califusion_calimero_call_duration_seconds":   {dto.MetricType_HISTOGRAM, "operation"},
		"califusion_calimero_call_errors_total":       {dto.MetricType_COUNTER, "operation"},
		"califusion_dht_provide_failures_total":       {dto.MetricType_COUNTER, ""},
		"califusion_build_info":                       {dto.MetricType_GAUGE, "goversion,revision,version"},
		"califusion_catalog_models":                   {dto.MetricType_GAUGE, ""},
		"califusion_blob_bytes":                       {dto.MetricType_GAUGE, ""},
		"califusion_jobs_active":                      {dto.MetricType_GAUGE, "kind"},
		"califusion_rounds":                           {dto.MetricType_GAUGE, "state"},
		"califusion_peers":                            {dto.MetricType_GAUGE, "role"},
	}
	got := families(t, reg)
	for name, w := range want {
		mf, ok := got[name]
		if !ok {
			t.Errorf("%s is not registered", name)
			continue
		}
		if mf.GetType() != w.typ {
			t.Errorf("%s is a %v, want %v", name, mf.GetType(), w.typ)
		}
		if l := labelNames(mf); l != w.labels {
			t.Errorf("%s has labels %q, want %q", name, l, w.labels)
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s has no Help", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s is registered but not listed in this test", name)
		}
	}
	if err := testutil.CollectAndCompare(s.BuildInfo, strings.NewReader(`
# HELP califusion_build_info Always 1; the labels describe the running binary.
# TYPE califusion_build_info gauge
califusion_build_info{goversion="go1.x",revision="abc123",version="v9.9.9"} 1
`)); err != nil {
		t.Error(err)
	}
}

// The scrape-time gauges read the sources on every scrape: a change in a service shows at the
// next scrape with no bookkeeping.
func TestScrapeGaugesReadSources(t *testing.T) {
	src := &fakeSources{models: 3, jobs: map[string]int{"fetch": 2}, rounds: map[string]int{"open": 1, "done": 4},
		peers: map[string]int{"trainer": 2, "coordinator": 1, "unknown": 0}, blobs: 4096}
	_, reg := newRegistered(t, src)
	expect := func(name, text string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(text), name); err != nil {
			t.Error(err)
		}
	}
	expect("califusion_catalog_models", "# HELP califusion_catalog_models Models in this node's catalog.\n# TYPE califusion_catalog_models gauge\ncalifusion_catalog_models 3\n")
	expect("califusion_blob_bytes", "# HELP califusion_blob_bytes Size of the model ciphertext files in the datadir's blobs folder.\n# TYPE califusion_blob_bytes gauge\ncalifusion_blob_bytes 4096\n")
	src.models, src.blobs = 5, 8192
	src.jobs = map[string]int{"fetch": 1, "train": 1}
	src.rounds = map[string]int{"open": 0, "done": 5}
	expect("califusion_catalog_models", "# HELP califusion_catalog_models Models in this node's catalog.\n# TYPE califusion_catalog_models gauge\ncalifusion_catalog_models 5\n")
	expect("califusion_jobs_active", `# HELP califusion_jobs_active Queued or running jobs by kind.
# TYPE califusion_jobs_active gauge
califusion_jobs_active{kind="fetch"} 1
califusion_jobs_active{kind="train"} 1
`)
	expect("califusion_rounds", `# HELP califusion_rounds Training rounds this node knows, by state (open, aggregating, done, failed).
# TYPE califusion_rounds gauge
califusion_rounds{state="done"} 5
califusion_rounds{state="open"} 0
`)
	expect("califusion_peers", `# HELP califusion_peers Connected peers by the role their presence claims (unknown: no presence heard).
# TYPE califusion_peers gauge
califusion_peers{role="coordinator"} 1
califusion_peers{role="trainer"} 2
califusion_peers{role="unknown"} 0
`)
}

// The event methods move their counters, and a nil *Set ignores them.
func TestEventMethods(t *testing.T) {
	var none *Set
	none.FetchedChunk(1)
	none.ServedChunk(1)
	none.FetchDone(time.Second, nil)
	none.Update(true, "")
	none.Aggregated(map[string]float64{"accuracy": 1})
	none.HookRan("builtin", time.Second)
	none.Paid(ResultOK, big.NewInt(1), big.NewInt(1))
	none.KeyRelease("released")
	none.Anchor("put", "ok")
	none.ICPCall("transfer", time.Second, nil)
	none.CalimeroCall("put", time.Second, nil)
	none.ProvideFailed()

	s := New(Build{Version: "dev"})
	s.FetchedChunk(100)
	s.FetchedChunk(50)
	s.ServedChunk(70)
	s.FetchDone(2*time.Second, errors.New("x"))
	s.Update(true, "ignored")
	s.Update(false, "norm")
	s.Aggregated(map[string]float64{"accuracy": 0.75})
	s.Aggregated(nil)
	s.HookRan("exec", time.Second)
	s.Paid(ResultOK, big.NewInt(100_000), big.NewInt(10_000))
	s.Paid(ResultAlready, big.NewInt(5), big.NewInt(5))
	s.Paid(ResultError, nil, nil)
	s.KeyRelease("released")
	s.Anchor("get", "missing")
	s.ICPCall("transfer", time.Millisecond, errors.New("x"))
	s.CalimeroCall("put", time.Millisecond, nil)
	s.ProvideFailed()
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"transfer in", testutil.ToFloat64(s.TransferInBytes), 150},
		{"chunks fetched", testutil.ToFloat64(s.ChunksFetched), 2},
		{"transfer out", testutil.ToFloat64(s.TransferOutBytes), 70},
		{"chunks served", testutil.ToFloat64(s.ChunksServed), 1},
		{"accepted", testutil.ToFloat64(s.Updates.WithLabelValues(VerdictAccepted, "")), 1},
		{"rejected norm", testutil.ToFloat64(s.Updates.WithLabelValues(VerdictRejected, "norm")), 1},
		{"accuracy", testutil.ToFloat64(s.AggregateAccuracy), 0.75},
		{"aggregated", testutil.ToFloat64(s.RoundsAggregated), 2},
		{"payments ok", testutil.ToFloat64(s.Payments.WithLabelValues(ResultOK)), 1},
		{"payments already", testutil.ToFloat64(s.Payments.WithLabelValues(ResultAlready)), 1},
		{"payments error", testutil.ToFloat64(s.Payments.WithLabelValues(ResultError)), 1},
		{"amount", testutil.ToFloat64(s.PaidAmount), 100_000},
		{"fees", testutil.ToFloat64(s.FeesPaid), 10_000},
		{"released", testutil.ToFloat64(s.KeyReleases.WithLabelValues("released")), 1},
		{"anchor get missing", testutil.ToFloat64(s.AnchorResult.WithLabelValues("get", "missing")), 1},
		{"icp errors", testutil.ToFloat64(s.ICPCallErrors.WithLabelValues("transfer")), 1},
		{"calimero errors", testutil.ToFloat64(s.CalimeroCallErrors.WithLabelValues("put")), 0},
		{"provide failures", testutil.ToFloat64(s.DHTProvideFailures), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if n := testutil.CollectAndCount(s.FetchDuration); n != 2 {
		t.Errorf("fetch duration series = %d, want 2 (ok, error)", n)
	}
}
