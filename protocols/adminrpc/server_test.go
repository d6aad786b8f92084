package adminrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const testToken = "s3cret-token"

type echoParams struct {
	Text string `json:"text"`
	N    int    `json:"n"`
}

func newTestServer(t *testing.T) (*httptest.Server, *Client) {
	t.Helper()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "# metrics\n") })
	s := NewServer(testToken, slog.New(slog.DiscardHandler), metrics, nil)
	Handle(s, "test_echo", func(ctx context.Context, p echoParams) (echoParams, error) { return p, nil })
	Handle(s, "test_fail", func(ctx context.Context, p Empty) (any, error) {
		return nil, Errorf(CodeNotFound, "model %s is not known", "ab")
	})
	Handle(s, "test_internal", func(ctx context.Context, p Empty) (any, error) { return nil, errors.New("disk on fire") })
	Handle(s, "test_panic", func(ctx context.Context, p Empty) (any, error) { panic("boom") })
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts, NewClient(strings.TrimPrefix(ts.URL, "http://"), testToken)
}

func post(t *testing.T, url, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTransportRules(t *testing.T) {
	ts, _ := newTestServer(t)
	call := `{"jsonrpc":"2.0","id":1,"method":"test_echo","params":{"text":"hi"}}`
	tests := []struct {
		name string
		body string
		hdr  map[string]string
		want int
	}{
		{"ok", call, nil, 200},
		{"no token", call, map[string]string{"Authorization": ""}, 401},
		{"wrong token", call, map[string]string{"Authorization": "Bearer nope"}, 401},
		{"token prefix only", call, map[string]string{"Authorization": "Bearer " + testToken[:4]}, 401},
		{"basic auth", call, map[string]string{"Authorization": "Basic " + testToken}, 401},
		{"origin", call, map[string]string{"Origin": "http://evil.example"}, 403},
		{"referer", call, map[string]string{"Referer": "http://evil.example/x"}, 403},
		{"text content type", call, map[string]string{"Content-Type": "text/plain"}, 415},
		{"body over 5 MiB", `{"jsonrpc":"2.0","id":1,"method":"test_echo","params":{"text":"` + strings.Repeat("a", MaxBody) + `"}}`, nil, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, body := post(t, ts.URL+"/", tt.body, tt.hdr); got != tt.want {
				t.Errorf("POST / = %d (%s), want %d", got, body, tt.want)
			}
		})
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	ts, _ := newTestServer(t)
	resp, err := http.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "ok" {
		t.Errorf("GET /healthz = %d %q, want 200 ok", resp.StatusCode, b)
	}
	resp, _ = http.Get(ts.URL + "/metrics")
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("GET /metrics without token = %d, want 401", resp.StatusCode)
	}
	resp, _ = http.Get(ts.URL + "/debug/pprof/heap")
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("GET /debug/pprof/heap without token = %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/debug/pprof/heap", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /debug/pprof/heap with token = %d, want 200", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodGet, ts.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /metrics with token = %d, want 200", resp.StatusCode)
	}
}

func decodeOne(t *testing.T, body string) (code int, result json.RawMessage) {
	t.Helper()
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *Error          `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("reply %q is not JSON: %v", body, err)
	}
	if r.Error != nil {
		return r.Error.Code, nil
	}
	return 0, r.Result
}

func TestErrorCodes(t *testing.T) {
	ts, _ := newTestServer(t)
	tests := []struct {
		name string
		body string
		want int
	}{
		{"parse error", `{"jsonrpc":"2.0","id":1,"method":`, CodeParse},
		{"not an object", `42`, CodeInvalidRequest},
		{"wrong version", `{"jsonrpc":"1.0","id":1,"method":"test_echo"}`, CodeInvalidRequest},
		{"no method", `{"jsonrpc":"2.0","id":1}`, CodeInvalidRequest},
		{"object id", `{"jsonrpc":"2.0","id":{},"method":"test_echo"}`, CodeInvalidRequest},
		{"scalar params", `{"jsonrpc":"2.0","id":1,"method":"test_echo","params":3}`, CodeInvalidRequest},
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"nope"}`, CodeMethodNotFound},
		{"unknown param", `{"jsonrpc":"2.0","id":1,"method":"test_echo","params":{"txt":"x"}}`, CodeInvalidParams},
		{"wrong param type", `{"jsonrpc":"2.0","id":1,"method":"test_echo","params":{"n":"x"}}`, CodeInvalidParams},
		{"app error", `{"jsonrpc":"2.0","id":1,"method":"test_fail"}`, CodeNotFound},
		{"internal", `{"jsonrpc":"2.0","id":1,"method":"test_internal"}`, CodeInternal},
		{"panic", `{"jsonrpc":"2.0","id":1,"method":"test_panic"}`, CodeInternal},
		{"ok", `{"jsonrpc":"2.0","id":"a","method":"test_echo","params":{"text":"x"}}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, ts.URL+"/", tt.body, nil)
			if status != 200 {
				t.Fatalf("POST %s = HTTP %d, want 200", tt.body, status)
			}
			if got, _ := decodeOne(t, body); got != tt.want {
				t.Errorf("POST %s = code %d (%s), want %d", tt.body, got, body, tt.want)
			}
		})
	}
}

func TestBatch(t *testing.T) {
	ts, _ := newTestServer(t)
	one := `{"jsonrpc":"2.0","id":%d,"method":"test_echo","params":{"n":%d}}`
	calls := make([]string, MaxBatch)
	for i := range calls {
		calls[i] = fmt.Sprintf(one, i, i)
	}
	_, body := post(t, ts.URL+"/", "["+strings.Join(calls, ",")+"]", nil)
	var replies []struct {
		ID     int        `json:"id"`
		Result echoParams `json:"result"`
	}
	if err := json.Unmarshal([]byte(body), &replies); err != nil {
		t.Fatalf("batch reply %q: %v", body, err)
	}
	if len(replies) != MaxBatch {
		t.Fatalf("batch of %d got %d replies, want %d", MaxBatch, len(replies), MaxBatch)
	}
	for i, r := range replies {
		if r.ID != i || r.Result.N != i {
			t.Errorf("reply[%d] = %+v, want id and n %d", i, r, i)
		}
	}

	_, body = post(t, ts.URL+"/", "["+strings.Join(append(calls, fmt.Sprintf(one, 100, 100)), ",")+"]", nil)
	if code, _ := decodeOne(t, body); code != CodeInvalidRequest {
		t.Errorf("batch of %d = %s, want code %d", MaxBatch+1, body, CodeInvalidRequest)
	}
	_, body = post(t, ts.URL+"/", "[]", nil)
	if code, _ := decodeOne(t, body); code != CodeInvalidRequest {
		t.Errorf("empty batch = %s, want code %d", body, CodeInvalidRequest)
	}
	status, body := post(t, ts.URL+"/", `[{"jsonrpc":"2.0","method":"test_echo"}]`, nil)
	if status != http.StatusNoContent || body != "" {
		t.Errorf("notification-only batch = %d %q, want 204 and no body", status, body)
	}
}

func TestClient(t *testing.T) {
	_, c := newTestServer(t)
	var got echoParams
	if err := c.Call(t.Context(), "test_echo", echoParams{Text: "hi", N: 3}, &got); err != nil {
		t.Fatalf("Call(test_echo) = %v", err)
	}
	if got.Text != "hi" || got.N != 3 {
		t.Errorf("Call(test_echo) = %+v, want {hi 3}", got)
	}
	err := c.Call(t.Context(), "test_fail", nil, nil)
	if CodeOf(err) != CodeNotFound || !strings.Contains(err.Error(), "model ab is not known") {
		t.Errorf("Call(test_fail) = %v, want code %d with message", err, CodeNotFound)
	}
	bad := NewClient(c.Addr(), "wrong")
	if err := bad.Call(t.Context(), "test_echo", nil, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("Call with wrong token = %v, want HTTP 401 error", err)
	}
}

func FuzzDispatch(f *testing.F) {
	s := NewServer(testToken, slog.New(slog.DiscardHandler), nil, nil)
	Handle(s, "test_echo", func(ctx context.Context, p echoParams) (echoParams, error) { return p, nil })
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"test_echo","params":{"text":"hi"}}`))
	f.Add([]byte(`[{"jsonrpc":"2.0","id":1,"method":"test_echo"},{"jsonrpc":"2.0","method":"x"}]`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":null,"method":"test_echo","params":[1]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out := s.Dispatch(context.Background(), body)
		if out == nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("Dispatch(%q) = %q, not valid JSON", body, out)
		}
	})
}
