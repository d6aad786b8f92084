package calimerotest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestEnvelopeRules(t *testing.T) {
	sim, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ctx := sim.CreateContext()
	exec := `"method":"execute","params":{"contextId":"` + ctx + `","method":"get","argsJson":{"key":"k"}}`
	tests := []struct {
		name   string
		ctype  string
		body   string
		status int
		want   string
	}{
		{"string id echoed", "application/json", `{"jsonrpc":"2.0","id":"abc",` + exec + `}`, 200, `"id":"abc"`},
		{"number id echoed", "application/json", `{"jsonrpc":"2.0","id":42,` + exec + `}`, 200, `"id":42`},
		{"null id echoed", "application/json", `{"jsonrpc":"2.0","id":null,` + exec + `}`, 200, `"id":null`},
		{"missing id", "application/json", `{"jsonrpc":"2.0",` + exec + `}`, 422, "id"},
		{"negative id", "application/json", `{"jsonrpc":"2.0","id":-1,` + exec + `}`, 422, "id"},
		{"wrong version", "application/json", `{"jsonrpc":"1.0","id":1,` + exec + `}`, 422, "jsonrpc"},
		{"not json", "application/json", `{`, 400, ""},
		{"wrong content type", "text/plain", `{}`, 415, ""},
		{"unknown rpc method", "application/json", `{"jsonrpc":"2.0","id":1,"method":"nope","params":{}}`, 200, `"type":"ParseError"`},
		{"output null", "application/json", `{"jsonrpc":"2.0","id":1,` + exec + `}`, 200, `"result":{"output":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(sim.URL()+"/jsonrpc", tt.ctype, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.want) {
				t.Errorf("POST %s = %d %s, want %d containing %q", tt.body, resp.StatusCode, b, tt.status, tt.want)
			}
		})
	}
}

func TestAdminEndpoints(t *testing.T) {
	sim, _ := New(Options{})
	defer sim.Close()
	post := func(path, body string) (int, string) {
		resp, err := http.Post(sim.URL()+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if st, b := post("/admin-api/contexts", `{"applicationId":"x","groupId":"zz"}`); st != 400 || !strings.Contains(b, "Invalid group_id") {
		t.Errorf("create context with a bad group = %d %s, want 400", st, b)
	}
	if st, b := post("/admin-api/contexts", `{"applicationId":"`+DefaultApplication+`","groupId":"`+strings.Repeat("ab", 32)+`"}`); st != 404 || !strings.Contains(b, `"error"`) {
		t.Errorf("create context in an unknown namespace = %d %s, want 404", st, b)
	}
	resp, _ := http.Get(sim.URL() + "/admin-api/health")
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `"alive"`) {
		t.Errorf("health = %s", b)
	}
}
