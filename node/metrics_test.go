package node

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/protocols/adminrpc"
)

func startNodeWith(t *testing.T, edit func(*config.Config)) *Node {
	t.Helper()
	cfg := config.Default()
	if err := cfg.Apply(config.Overrides{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, RPCAddr: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	dir := filepath.Join(t.TempDir(), "node")
	if _, err := Init(dir, cfg); err != nil {
		t.Fatal(err)
	}
	dd, err := OpenDatadir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(cfg, dd, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); dd.Close() })
	return n
}

func httpDo(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// With rpc.metrics_addr set, the node serves its metrics there without a token (the node's own
// collectors and the scrape-time gauges included) and refuses the admin API there; the address
// is in <datadir>/metrics.addr. The read-only metrics.token (0600) opens GET /metrics on the
// admin listener and no RPC.
func TestMetricsListenerAndToken(t *testing.T) {
	n := startNodeWith(t, func(c *config.Config) { c.RPC.MetricsAddr = "127.0.0.1:0" })
	if n.MetricsAddr() == "" {
		t.Fatal("no metrics listener")
	}
	raw, err := os.ReadFile(n.dir.Join(MetricsAddrFile))
	if err != nil || strings.TrimSpace(string(raw)) != n.MetricsAddr() {
		t.Fatalf("%s = %q, %v; want %s", MetricsAddrFile, raw, err, n.MetricsAddr())
	}
	code, body := httpDo(t, http.MethodGet, "http://"+n.MetricsAddr()+"/metrics", "", "")
	if code != 200 {
		t.Fatalf("GET /metrics on the metrics listener = %d %s", code, body)
	}
	for _, want := range []string{"califusion_build_info{", "califusion_catalog_models 0", "califusion_blob_bytes 0", `califusion_peers{role="unknown"} 0`,
		`califusion_rounds{state="open"} 0`, `califusion_payments_total{result="ok"} 0`, "califusion_transfer_in_bytes_total 0"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	call := `{"jsonrpc":"2.0","id":1,"method":"node_info"}`
	if code, _ := httpDo(t, http.MethodPost, "http://"+n.MetricsAddr()+"/", n.token, call); code != 404 {
		t.Errorf("POST / on the metrics listener = %d, want 404", code)
	}

	fi, err := os.Stat(n.dir.Join(adminrpc.MetricsTokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("metrics.token: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	mtok, err := n.dir.MetricsToken()
	if err != nil {
		t.Fatal(err)
	}
	if mtok == n.token {
		t.Fatal("the metrics token is the admin token")
	}
	if code, _ := httpDo(t, http.MethodGet, "http://"+n.RPCAddr()+"/metrics", mtok, ""); code != 200 {
		t.Errorf("GET /metrics on the admin listener with the metrics token = %d, want 200", code)
	}
	if code, _ := httpDo(t, http.MethodPost, "http://"+n.RPCAddr()+"/", mtok, call); code != 401 {
		t.Errorf("RPC on the admin listener with the metrics token = %d, want 401", code)
	}
	if code, _ := httpDo(t, http.MethodPost, "http://"+n.RPCAddr()+"/", n.token, call); code != 200 {
		t.Errorf("RPC on the admin listener with the admin token = %d, want 200", code)
	}
	n.Close()
	if _, err := os.Stat(n.dir.Join(MetricsAddrFile)); !os.IsNotExist(err) {
		t.Errorf("%s left after Close: %v", MetricsAddrFile, err)
	}
}

// Without rpc.metrics_addr there is no metrics listener and no metrics.addr.
func TestNoMetricsListenerByDefault(t *testing.T) {
	n := startNodeWith(t, func(*config.Config) {})
	if n.MetricsAddr() != "" {
		t.Errorf("metrics listener on %s without rpc.metrics_addr", n.MetricsAddr())
	}
	if _, err := os.Stat(n.dir.Join(MetricsAddrFile)); !os.IsNotExist(err) {
		t.Errorf("%s exists without rpc.metrics_addr: %v", MetricsAddrFile, err)
	}
}
