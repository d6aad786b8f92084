package e2e

import (
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
	if len(rep.Metrics) != trainers+1 {
		t.Fatalf("devnet report has metrics for %d nodes, want %d: %v", len(rep.Metrics), trainers+1, rep.Metrics)
	}
	positive := func(node string, m map[string]float64, names ...string) {
		t.Helper()
		for _, name := range names {
			if m[name] <= 0 {
				t.Errorf("%s: %s moved by %v during the devnet story, want > 0", node, name, m[name])
			}
		}
	}
	for _, n := range rep.Nodes {
		m, ok := rep.Metrics[n.Name]
		if !ok {
			t.Errorf("devnet report has no metrics for %s", n.Name)
			continue
		}
		if _, ok := m["califusion_build_info"]; !ok {
			t.Errorf("%s: califusion_build_info missing from /metrics: %v", n.Name, m)
		}
		switch {
		case n.Name == "coordinator":
			positive(n.Name, m, "califusion_chunks_served_total", "califusion_transfer_out_bytes_total",
				"califusion_updates_total", "califusion_key_releases_total", "califusion_anchor_results_total",
				"califusion_calimero_call_duration_seconds_count")
			if rep.Training != nil {
				accepted := 0
				for _, r := range rep.Training.Rounds {
					accepted += r.Updates
				}
				if got := m["califusion_updates_total"]; got < float64(accepted) {
					t.Errorf("coordinator: califusion_updates_total moved by %v, want at least the %d accepted updates of the rounds", got, accepted)
				}
				if got := m["califusion_rounds_aggregated_total"]; got != float64(len(rep.Training.Rounds)) {
					t.Errorf("coordinator: califusion_rounds_aggregated_total moved by %v, want the %d rounds", got, len(rep.Training.Rounds))
				}
			}
		default:
			positive(n.Name, m, "califusion_transfer_in_bytes_total", "califusion_payments_total",
				"califusion_icp_call_duration_seconds_count", "califusion_hook_duration_seconds_count")
		}
	}
}
