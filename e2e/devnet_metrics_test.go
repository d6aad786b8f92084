package e2e

import (
	"strings"
	"testing"

	"github.com/califusion/califusion/node/devnet"
)

// checkDevnetMetrics checks the report's metrics: between the scrape after the nodes came up and
// the one at the story's end, on the coordinator the chunks served and bytes sent, the judged
// updates (at least every accepted one of the rounds), the rounds aggregated (exactly the story's
// rounds), the key releases, the anchor results and the Calimero calls moved; on every trainer
// the bytes received, the payments, the ICP calls and the hook runs moved; every node exposes
// califusion_build_info.
func checkDevnetMetrics(t *testing.T, rep *devnet.Report, trainers int) {
	t.Helper()
	live := 0
	for _, n := range rep.Nodes {
		if !n.Stopped {
			live++
		}
	}
	if len(rep.Metrics) != live {
		t.Fatalf("devnet report has metrics for %d nodes, want the %d still running: %v", len(rep.Metrics), live, rep.Metrics)
	}
	positive := func(node string, m map[string]float64, names ...string) {
		t.Helper()
		for _, name := range names {
			if m[name] <= 0 {
				t.Errorf("%s: %s moved by %v during the devnet story, want > 0", node, name, m[name])
			}
		}
	}
	aggregated := 0.0
	for _, n := range rep.Nodes {
		if n.Stopped {
			continue
		}
		m, ok := rep.Metrics[n.Name]
		if !ok {
			t.Errorf("devnet report has no metrics for %s", n.Name)
			continue
		}
		if _, ok := m["califusion_build_info"]; !ok {
			t.Errorf("%s: califusion_build_info missing from /metrics: %v", n.Name, m)
		}
		switch {
		case n.Name == "publisher":
			positive(n.Name, m, "califusion_chunks_served_total", "califusion_transfer_out_bytes_total", "califusion_anchor_results_total")
		case strings.HasPrefix(n.Name, "coordinator"):
			aggregated += m["califusion_rounds_aggregated_total"]
			if n.Name == "coordinator2" { // the one that ran every round after the first
				positive(n.Name, m, "califusion_key_releases_total", "califusion_anchor_results_total",
					"califusion_calimero_call_duration_seconds_count", "califusion_rounds_aggregated_total")
			}
		case n.Restarts > 0: // its counters started again when the story restarted it
		default:
			positive(n.Name, m, "califusion_transfer_in_bytes_total", "califusion_payments_total",
				"califusion_icp_call_duration_seconds_count", "califusion_hook_duration_seconds_count")
		}
	}
	// The rounds aggregated on the live coordinators: all but the first when its coordinator was
	// killed.
	if rep.Training != nil {
		want := float64(len(rep.Training.Rounds))
		if rep.Training.KilledCoordinator != "" {
			want--
		}
		if aggregated != want {
			t.Errorf("the live coordinators' califusion_rounds_aggregated_total moved by %v, want %v", aggregated, want)
		}
	}
}
