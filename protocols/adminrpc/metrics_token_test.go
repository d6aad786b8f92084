package adminrpc

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const testMetricsToken = "metrics-0123456789abcdef0123456789abcdef"

func do(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The read-only metrics token opens GET /metrics on the admin listener and nothing else: no RPC
// call, no pprof; the admin token still opens everything.
func TestMetricsTokenReadsMetricsOnly(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "# metrics\n") })
	s := NewServer(testToken, slog.New(slog.DiscardHandler), metrics, nil)
	s.SetMetricsToken(testMetricsToken)
	Handle(s, "test_echo", func(ctx context.Context, p echoParams) (echoParams, error) { return p, nil })
	ts := httptest.NewServer(s)
	defer ts.Close()
	call := `{"jsonrpc":"2.0","id":1,"method":"test_echo","params":{"text":"hi"}}`
	for _, c := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"metrics with metrics token", http.MethodGet, "/metrics", testMetricsToken, "", 200},
		{"metrics with admin token", http.MethodGet, "/metrics", testToken, "", 200},
		{"metrics without token", http.MethodGet, "/metrics", "", "", 401},
		{"rpc with metrics token", http.MethodPost, "/", testMetricsToken, call, 401},
		{"pprof with metrics token", http.MethodGet, "/debug/pprof/heap", testMetricsToken, "", 401},
		{"post metrics with metrics token", http.MethodPost, "/metrics", testMetricsToken, call, 401},
		{"rpc with admin token", http.MethodPost, "/", testToken, call, 200},
	} {
		if got, body := do(t, c.method, ts.URL+c.path, c.token, c.body); got != c.want {
			t.Errorf("%s: %s %s = %d (%s), want %d", c.name, c.method, c.path, got, body, c.want)
		}
	}
}

// The separate metrics listener's handler serves /metrics and /healthz without a token and
// refuses the admin API (POST /) and pprof, whatever token comes with them.
func TestMetricsHandlerServesOnlyMetrics(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "# metrics\n") })
	ts := httptest.NewServer(MetricsHandler(metrics))
	defer ts.Close()
	call := `{"jsonrpc":"2.0","id":1,"method":"node_info"}`
	for _, c := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"metrics", http.MethodGet, "/metrics", "", "", 200},
		{"healthz", http.MethodGet, "/healthz", "", "", 200},
		{"rpc", http.MethodPost, "/", "", call, 404},
		{"rpc with a token", http.MethodPost, "/", testToken, call, 404},
		{"pprof", http.MethodGet, "/debug/pprof/heap", "", "", 404},
		{"post metrics", http.MethodPost, "/metrics", "", call, 405},
	} {
		got, body := do(t, c.method, ts.URL+c.path, c.token, c.body)
		if got != c.want {
			t.Errorf("%s: %s %s = %d (%s), want %d", c.name, c.method, c.path, got, body, c.want)
		}
		if c.path == "/metrics" && got == 200 && body != "# metrics\n" {
			t.Errorf("GET /metrics body = %q", body)
		}
	}
}
