package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/califusion/califusion/node/metrics"
)

// `metrics dashboard` prints the embedded Grafana dashboard, as valid JSON.
func TestMetricsDashboardPrints(t *testing.T) {
	cmd := metricsCmd(&globals{})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"dashboard"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), metrics.Dashboard) {
		t.Fatal("output is not the embedded dashboard")
	}
	var v map[string]any
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v["title"] == nil {
		t.Fatalf("dashboard is not a JSON object with a title: %v", err)
	}
}
