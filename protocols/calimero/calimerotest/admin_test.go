package calimerotest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// call sends method path body to node i and returns the status and the decoded JSON body.
func call(t *testing.T, sim *Sim, i int, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, sim.Node(i).URL()+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: reply %q is not a JSON object", method, path, raw)
	}
	return resp.StatusCode, out
}

func data(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	d, ok := m["data"].(map[string]any)
	if !ok {
		t.Fatalf("reply %v has no data object", m)
	}
	return d
}

func rpc(t *testing.T, sim *Sim, i int, ctx, method, args string) map[string]any {
	t.Helper()
	_, out := call(t, sim, i, "POST", "/jsonrpc", `{"jsonrpc":"2.0","id":1,"method":"execute","params":{"contextId":"`+ctx+`","method":"`+method+`","argsJson":`+args+`}}`)
	return out
}

// TestNamespaceInviteJoin: node 0 creates a namespace and a context in it; node 1 is no member
// (execute answers "No owned identity", identities-owned is empty) until it joins with node 0's
// invitation, after which it follows the context and holds node 0's writes.
func TestNamespaceInviteJoin(t *testing.T) {
	sim, err := New(Options{Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	st, out := call(t, sim, 0, "POST", "/admin-api/namespaces", `{"applicationId":"`+DefaultApplication+`"}`)
	ns, _ := data(t, out)["namespaceId"].(string)
	if st != 200 || !isHex32(ns) {
		t.Fatalf("create namespace = %d %v", st, out)
	}
	st, out = call(t, sim, 0, "POST", "/admin-api/contexts", `{"applicationId":"`+DefaultApplication+`","groupId":"`+ns+`","contextSeed":null,"initializationParams":[]}`)
	ctx, _ := data(t, out)["contextId"].(string)
	if st != 200 || !isB58(ctx) || data(t, out)["memberPublicKey"] != sim.Node(0).Identity() {
		t.Fatalf("create context = %d %v", st, out)
	}
	if st, out := call(t, sim, 0, "GET", "/admin-api/contexts/"+ctx, ""); st != 200 || data(t, out)["applicationId"] != DefaultApplication || data(t, out)["groupId"] != ns {
		t.Errorf("GET context = %d %v", st, out)
	}
	rpc(t, sim, 0, ctx, "set", `{"key":"k","value":"v"}`)

	// Node 1 is not a member yet.
	if out := rpc(t, sim, 1, ctx, "get", `{"key":"k"}`); !strings.Contains(toJSON(out["error"]), "No owned identity found for this context") {
		t.Errorf("execute on a non-member = %v, want the no-owned-identity FunctionCallError", out)
	}
	if st, out := call(t, sim, 1, "GET", "/admin-api/contexts/"+ctx+"/identities-owned", ""); st != 200 || len(data(t, out)["identities"].([]any)) != 0 {
		t.Errorf("identities-owned on a non-member = %d %v, want none", st, out)
	}
	if st, out := call(t, sim, 1, "GET", "/admin-api/contexts/"+ctx, ""); st != 404 || out["error"] == nil {
		t.Errorf("GET context on a non-member = %d %v, want 404", st, out)
	}
	if st, out := call(t, sim, 1, "POST", "/admin-api/contexts/"+ctx+"/join", ""); st != 403 || out["error"] == nil {
		t.Errorf("context join before the namespace join = %d %v, want 403", st, out)
	}
	if st, out := call(t, sim, 1, "POST", "/admin-api/namespaces/"+ns+"/invite", `{}`); st != 403 || out["error"] == nil {
		t.Errorf("invite by a non-member = %d %v, want 403", st, out)
	}

	st, out = call(t, sim, 0, "POST", "/admin-api/namespaces/"+ns+"/invite", `{}`)
	inv, ok := data(t, out)["invitation"].(map[string]any)
	if st != 200 || !ok {
		t.Fatalf("invite = %d %v", st, out)
	}
	good := toJSON(inv)
	tampered := strings.Replace(good, sim.Node(0).Identity(), sim.Node(1).Identity(), 1)
	for _, bad := range []struct{ name, body string }{
		{"not an object", `{"invitation":"nope"}`},
		{"missing", `{}`},
		{"tampered", `{"invitation":` + tampered + `}`},
		{"unsigned", `{"invitation":{"invitation":{"groupId":"` + ns + `"}}}`},
	} {
		if st, out := call(t, sim, 1, "POST", "/admin-api/namespaces/"+ns+"/join", bad.body); st != 400 || out["error"] == nil {
			t.Errorf("join with a %s invitation = %d %v, want 400", bad.name, st, out)
		}
	}
	if st, out := call(t, sim, 1, "POST", "/admin-api/namespaces/"+strings.Repeat("cd", 32)+"/join", `{"invitation":`+good+`}`); st != 400 {
		t.Errorf("join of another namespace with the invitation = %d %v, want 400", st, out)
	}
	if sim.Node(1).Member(ctx) {
		t.Fatal("node 1 follows the context after refused joins")
	}
	st, out = call(t, sim, 1, "POST", "/admin-api/namespaces/"+ns+"/join", `{"invitation":`+good+`}`)
	if st != 200 || data(t, out)["namespaceId"] != ns || data(t, out)["memberIdentity"] != sim.Node(1).Identity() || data(t, out)["memberAccount"] == "" {
		t.Fatalf("join = %d %v", st, out)
	}
	if out := rpc(t, sim, 1, ctx, "get", `{"key":"k"}`); toJSON(out["result"]) != `{"output":"v"}` {
		t.Errorf("node 1 get after the join = %v, want v", out)
	}
	if st, out := call(t, sim, 1, "POST", "/admin-api/contexts/"+ctx+"/join", ""); st != 200 || data(t, out)["contextId"] != ctx || data(t, out)["memberPublicKey"] != sim.Node(1).Identity() {
		t.Errorf("context join after the namespace join = %d %v", st, out)
	}
	if st, out := call(t, sim, 1, "GET", "/admin-api/contexts/"+ctx+"/identities-owned", ""); st != 200 || toJSON(data(t, out)["identities"]) != `["`+sim.Node(1).Identity()+`"]` {
		t.Errorf("identities-owned after the join = %d %v", st, out)
	}
	// Writes on node 1 replicate back.
	rpc(t, sim, 1, ctx, "set", `{"key":"k2","value":"w"}`)
	if got := sim.Node(0).Entries(ctx)["k2"]; got != "w" {
		t.Errorf("node 0 did not get node 1's write: %q", got)
	}
	if st, out := call(t, sim, 0, "POST", "/admin-api/namespaces/"+strings.Repeat("ef", 32)+"/invite", `{}`); st != 404 || out["error"] == nil {
		t.Errorf("invite into an unknown namespace = %d %v, want 404", st, out)
	}
	if n := sim.Node(0).Calls("POST /admin-api/namespaces/{id}/invite"); n != 2 {
		t.Errorf("node 0 counted %d invite calls, want 2", n)
	}
}

// TestJoinUninitialized: with a replication delay, a joined context answers Uninitialized until
// its snapshot arrives; an injected 504 is answered in merod's error shape.
func TestJoinUninitialized(t *testing.T) {
	sim, err := New(Options{Nodes: 2, ReplicationDelay: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	_, out := call(t, sim, 0, "POST", "/admin-api/namespaces", `{"applicationId":"`+DefaultApplication+`"}`)
	ns := data(t, out)["namespaceId"].(string)
	_, out = call(t, sim, 0, "POST", "/admin-api/contexts", `{"applicationId":"`+DefaultApplication+`","groupId":"`+ns+`"}`)
	ctx := data(t, out)["contextId"].(string)
	rpc(t, sim, 0, ctx, "set", `{"key":"k","value":"v"}`)
	_, out = call(t, sim, 0, "POST", "/admin-api/namespaces/"+ns+"/invite", `{}`)
	inv := toJSON(data(t, out)["invitation"])
	sim.Node(1).FailAdmin("POST /admin-api/namespaces/{id}/join", 504, 1)
	if st, out := call(t, sim, 1, "POST", "/admin-api/namespaces/"+ns+"/join", `{"invitation":`+inv+`}`); st != 504 || out["error"] == nil {
		t.Errorf("join under an injected fault = %d %v, want 504 with an error", st, out)
	}
	if st, _ := call(t, sim, 1, "POST", "/admin-api/namespaces/"+ns+"/join", `{"invitation":`+inv+`}`); st != 200 {
		t.Fatalf("join = %d", st)
	}
	if out := rpc(t, sim, 1, ctx, "get", `{"key":"k"}`); toJSON(out["error"]) != `{"type":"Uninitialized"}` {
		t.Errorf("get right after the join = %v, want Uninitialized", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("the joined context never synced")
		}
		out := rpc(t, sim, 1, ctx, "get", `{"key":"k"}`)
		if out["error"] == nil {
			if toJSON(out["result"]) != `{"output":"v"}` {
				t.Errorf("get once synced = %v, want v", out)
			}
			break
		}
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
