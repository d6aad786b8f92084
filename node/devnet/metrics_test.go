package devnet

import (
	"bytes"
	"strings"
	"testing"

	"github.com/califusion/califusion/node/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

const sampleBefore = `# HELP califusion_transfer_out_bytes_total Bytes served.
# TYPE califusion_transfer_out_bytes_total counter
califusion_transfer_out_bytes_total 100
# TYPE califusion_updates_total counter
califusion_updates_total{reason="",verdict="accepted"} 2
califusion_updates_total{reason="norm",verdict="rejected"} 1
# TYPE califusion_icp_call_duration_seconds histogram
califusion_icp_call_duration_seconds_bucket{operation="transfer",le="0.005"} 1
califusion_icp_call_duration_seconds_bucket{operation="transfer",le="+Inf"} 3
califusion_icp_call_duration_seconds_sum{operation="transfer"} 0.2
califusion_icp_call_duration_seconds_count{operation="transfer"} 3
califusion_icp_call_duration_seconds_bucket{operation="balance",le="0.005"} 0
califusion_icp_call_duration_seconds_bucket{operation="balance",le="+Inf"} 0
califusion_icp_call_duration_seconds_sum{operation="balance"} 0
califusion_icp_call_duration_seconds_count{operation="balance"} 0
# TYPE califusion_rounds gauge
califusion_rounds{state="done"} 1
# TYPE califusion_build_info gauge
califusion_build_info{goversion="go1.26",revision="abc",version="dev"} 1
# TYPE go_goroutines gauge
go_goroutines 40
`

const sampleAfter = `# TYPE califusion_transfer_out_bytes_total counter
califusion_transfer_out_bytes_total 1124
# TYPE califusion_updates_total counter
califusion_updates_total{reason="",verdict="accepted"} 6
califusion_updates_total{reason="norm",verdict="rejected"} 1
califusion_updates_total{reason="stale",verdict="rejected"} 2
# TYPE califusion_icp_call_duration_seconds histogram
califusion_icp_call_duration_seconds_bucket{operation="transfer",le="0.005"} 1
califusion_icp_call_duration_seconds_bucket{operation="transfer",le="+Inf"} 5
califusion_icp_call_duration_seconds_sum{operation="transfer"} 0.4
califusion_icp_call_duration_seconds_count{operation="transfer"} 5
califusion_icp_call_duration_seconds_bucket{operation="balance",le="0.005"} 4
califusion_icp_call_duration_seconds_bucket{operation="balance",le="+Inf"} 4
califusion_icp_call_duration_seconds_sum{operation="balance"} 0.01
califusion_icp_call_duration_seconds_count{operation="balance"} 4
# TYPE califusion_rounds gauge
califusion_rounds{state="done"} 3
califusion_rounds{state="open"} 1
# TYPE califusion_payments_total counter
califusion_payments_total{result="ok"} 1
# TYPE califusion_build_info gauge
califusion_build_info{goversion="go1.26",revision="abc",version="dev"} 1
# TYPE go_goroutines gauge
go_goroutines 55
`

// TestMetricDeltas: two text-format scrapes become per-series changes, each summed over its
// labels (a label set new in the second scrape counts from 0), a histogram by its _count, a
// series only the second scrape has counts from 0, build_info is kept with its 0, and series
// outside the headline list are left out.
func TestMetricDeltas(t *testing.T) {
	before, err := parseHeadline(strings.NewReader(sampleBefore))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseHeadline(strings.NewReader(sampleAfter))
	if err != nil {
		t.Fatal(err)
	}
	if before["califusion_updates_total"] != 3 || before["califusion_icp_call_duration_seconds_count"] != 3 {
		t.Errorf("before = %v, want updates 3 (2+1) and ICP calls 3 (3+0)", before)
	}
	got := deltas(before, after)
	want := map[string]float64{
		"califusion_transfer_out_bytes_total":        1024,
		"califusion_updates_total":                   6, // 4 more accepted, 2 stale rejections
		"califusion_icp_call_duration_seconds_count": 6, // 2 transfers, 4 balances
		"califusion_rounds":                          3, // 1 → 4 over the states
		"califusion_payments_total":                  1,
		"califusion_build_info":                      0,
	}
	if len(got) != len(want) {
		t.Errorf("deltas = %v, want exactly %v", got, want)
	}
	for name, w := range want {
		if v, ok := got[name]; !ok || v != w {
			t.Errorf("delta of %s = %v (present %v), want %v", name, v, ok, w)
		}
	}
	if _, err := parseHeadline(strings.NewReader("califusion_payments_total{result=\"ok\" 1\n")); err == nil {
		t.Error("parseHeadline accepted a malformed exposition")
	}
}

type fakeSources struct{}

func (fakeSources) Count() int                            { return 2 }
func (fakeSources) Active() map[string]int                { return map[string]int{"fetch": 1} }
func (fakeSources) CountByState() (map[string]int, error) { return map[string]int{"done": 1}, nil }
func (fakeSources) PeersByRole() map[string]int           { return map[string]int{"trainer": 1} }
func (fakeSources) BlobBytes() (int64, error)             { return 10, nil }
func (f fakeSources) sources() metrics.Sources {
	return metrics.Sources{Catalog: f, Jobs: f, Rounds: f, Peers: f, Blobs: f}
}
func encodeText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestHeadlineMetricsExist: every headline series is one the node's collectors (node/metrics)
// expose, so a renamed metric fails here rather than vanishing from the devnet's report.
func TestHeadlineMetricsExist(t *testing.T) {
	s := metrics.New(metrics.Build{Version: "dev", Revision: "r", GoVersion: "go"})
	s.Observe(fakeSources{}.sources())
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	// Vectors without pre-initialised label values only appear once moved.
	s.Updates.WithLabelValues(metrics.VerdictRejected, "norm").Inc()
	s.AnchorResult.WithLabelValues("put", "ok").Inc()
	got, err := parseHeadline(strings.NewReader(encodeText(t, reg)))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range HeadlineMetrics {
		if _, ok := got[name]; !ok {
			t.Errorf("headline metric %s is not exposed by node/metrics", name)
		}
	}
	if got["califusion_build_info"] != 1 || got["califusion_updates_total"] != 1 {
		t.Errorf("scrape = %v, want build_info 1 and one update", got)
	}
}

// TestPrintMetrics: the table has a column per role, a row only for series that moved on some
// node, one value where a role's nodes agree and min..max where they do not.
func TestPrintMetrics(t *testing.T) {
	nodes := []NodeReport{
		{NodeEntry: NodeEntry{Name: "coordinator", Roles: []string{"publisher", "coordinator"}}},
		{NodeEntry: NodeEntry{Name: "trainer1", Roles: []string{"trainer"}}},
		{NodeEntry: NodeEntry{Name: "trainer2", Roles: []string{"trainer"}}},
	}
	d := MetricDeltas{
		"coordinator": {"califusion_chunks_served_total": 8, "califusion_payments_total": 0, "califusion_build_info": 0},
		"trainer1":    {"califusion_payments_total": 1, "califusion_transfer_in_bytes_total": 2048, "califusion_build_info": 0},
		"trainer2":    {"califusion_payments_total": 1, "califusion_transfer_in_bytes_total": 4096, "califusion_build_info": 0},
	}
	var b strings.Builder
	printMetrics(&b, nodes, d)
	out := b.String()
	for _, want := range []string{"PUBLISHER,COORDINATOR (1)", "TRAINER (2)", "chunks_served_total", "2048..4096"} {
		if !strings.Contains(out, want) {
			t.Errorf("printMetrics =\n%s\nwant it to contain %q", out, want)
		}
	}
	if strings.Contains(out, "build_info") {
		t.Errorf("printMetrics =\n%s\nprinted a series that did not move", out)
	}
	var payments string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "payments_total") {
			payments = strings.Fields(l)[2]
		}
	}
	if payments != "1" {
		t.Errorf("printMetrics =\n%s\nwant the trainers' payments as the single value 1, got %q", out, payments)
	}
	b.Reset()
	printMetrics(&b, nodes, nil)
	if b.Len() != 0 {
		t.Errorf("printMetrics without metrics printed %q", b.String())
	}
}
