package config

import (
	"strings"
	"testing"
)

// rpc.metrics_addr is off by default, and follows rpc.addr's loopback rule when set.
func TestMetricsAddrLoopbackRule(t *testing.T) {
	if got := Default().RPC.MetricsAddr; got != "" {
		t.Fatalf("default rpc.metrics_addr = %q, want empty (off)", got)
	}
	for _, c := range []struct {
		addr  string
		allow bool
		ok    bool
	}{
		{"", false, true},
		{"127.0.0.1:9645", false, true},
		{"localhost:0", false, true},
		{"0.0.0.0:9645", false, false},
		{"0.0.0.0:9645", true, true},
		{"nohost", false, false},
	} {
		cfg := Default()
		cfg.RPC.MetricsAddr, cfg.RPC.AllowRemote = c.addr, c.allow
		err := cfg.Validate()
		if (err == nil) != c.ok {
			t.Errorf("Validate(rpc.metrics_addr %q, allow_remote %v) = %v, want ok %v", c.addr, c.allow, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "rpc.metrics_addr") {
			t.Errorf("Validate(rpc.metrics_addr %q) = %q, want it to name rpc.metrics_addr", c.addr, err)
		}
	}
	if cfg, err := Parse([]byte("[rpc]\nmetrics_addr = \"127.0.0.1:0\"\n")); err != nil || cfg.RPC.MetricsAddr != "127.0.0.1:0" {
		t.Errorf("Parse(metrics_addr) = %v, %v", cfg, err)
	}
}
