package calimerotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"

	"github.com/mr-tron/base58"
)

func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin-api/health", func(w http.ResponseWriter, r *http.Request) {
		writeData(w, map[string]string{"status": "alive"})
	})
	if n.auth != nil {
		mux.HandleFunc("POST /auth/token", n.auth.token)
		mux.HandleFunc("POST /auth/refresh", n.auth.refreshTokens)
	}
	protected := http.NewServeMux()
	protected.HandleFunc("POST /jsonrpc", n.jsonrpc)
	n.adminRoutes(protected)
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.auth != nil && !n.auth.check(w, r) {
			return
		}
		protected.ServeHTTP(w, r)
	}))
	return mux
}

func writeData(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"data": v})
}

func writeAPIError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// rpcRequest is the JSON-RPC envelope; ID stays raw so it is echoed with its JSON type.
type rpcRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

type rpcError struct {
	Type string `json:"type"`
	Data any    `json:"data,omitempty"`
}

func (n *Node) jsonrpc(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		http.Error(w, "Expected request with `Content-Type: application/json`", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		http.Error(w, "Failed to buffer the request body", http.StatusBadRequest)
		return
	}
	var req rpcRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "Failed to parse the request body as JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.JSONRPC != "2.0" {
		http.Error(w, "Failed to deserialize the JSON body into the target type: jsonrpc: invalid version", http.StatusUnprocessableEntity)
		return
	}
	if !validID(req.ID) {
		http.Error(w, "Failed to deserialize the JSON body into the target type: missing field `id`", http.StatusUnprocessableEntity)
		return
	}
	result, rerr := n.dispatch(req)
	resp := map[string]any{"jsonrpc": "2.0", "id": req.ID}
	if rerr != nil {
		resp["error"] = rerr
	} else {
		resp["result"] = result
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

// validID accepts a string, an unsigned 64-bit integer or null.
func validID(id json.RawMessage) bool {
	id = bytes.TrimSpace(id)
	if len(id) == 0 {
		return false
	}
	switch id[0] {
	case '"':
		var s string
		return json.Unmarshal(id, &s) == nil
	case 'n':
		return string(id) == "null"
	}
	var u uint64
	return json.Unmarshal(id, &u) == nil && !bytes.ContainsAny(id, ".eE-")
}

func (n *Node) dispatch(req rpcRequest) (any, *rpcError) {
	switch req.Method {
	case "execute":
		return n.execute(req.Params)
	case "sync_status":
		var p struct {
			ContextID string `json:"contextId"`
		}
		if err := json.Unmarshal(req.Params, &p); err != nil {
			return nil, &rpcError{Type: "ParseError", Data: err.Error()}
		}
		n.mu.Lock()
		_, ok := n.contexts[p.ContextID]
		synced := !n.pending[p.ContextID]
		n.mu.Unlock()
		if !ok {
			return nil, &rpcError{Type: "ContextNotFound"}
		}
		state := "idle"
		if !synced {
			state = "syncing"
		}
		return map[string]any{"contextId": p.ContextID, "isInitialized": synced, "syncState": map[string]string{"state": state}, "failureCount": 0}, nil
	}
	return nil, &rpcError{Type: "ParseError", Data: fmt.Sprintf("unknown variant `%s`, expected one of `execute`, `sync_status`, `set_ephemeral`", req.Method)}
}

func (n *Node) execute(raw json.RawMessage) (any, *rpcError) {
	var p struct {
		ContextID *string          `json:"contextId"`
		Method    *string          `json:"method"`
		ArgsJSON  *json.RawMessage `json:"argsJson"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, &rpcError{Type: "ParseError", Data: err.Error()}
	}
	switch {
	case p.ContextID == nil:
		return nil, &rpcError{Type: "ParseError", Data: "missing field `contextId`"}
	case p.Method == nil:
		return nil, &rpcError{Type: "ParseError", Data: "missing field `method`"}
	case *p.Method == "":
		return nil, &rpcError{Type: "ParseError", Data: "Field 'method' is required but was empty"}
	case len(*p.Method) > 256 || strings.IndexFunc(*p.Method, unicode.IsControl) >= 0:
		return nil, &rpcError{Type: "ParseError", Data: "Field 'method' is invalid"}
	}
	if b, err := base58.Decode(*p.ContextID); err != nil || len(b) != 32 {
		return nil, &rpcError{Type: "ParseError", Data: "invalid context id: expected base58 of 32 bytes"}
	}
	ctx := *p.ContextID
	n.mu.Lock()
	kv, member := n.contexts[ctx]
	if member && n.pending[ctx] {
		n.mu.Unlock()
		return nil, &rpcError{Type: "Uninitialized"}
	}
	if f := n.faults[ctx]; member && f.count > 0 {
		f.count--
		n.faults[ctx] = f
		n.mu.Unlock()
		return nil, &rpcError{Type: f.errType, Data: map[string]string{"context_id": ctx}}
	}
	n.mu.Unlock()
	if !member {
		return nil, &rpcError{Type: "FunctionCallError", Data: "No owned identity found for this context"}
	}
	var args json.RawMessage
	if p.ArgsJSON != nil {
		args = *p.ArgsJSON
	}
	m := *p.Method
	switch m {
	case "set":
		a, err := keyValueArgs(m, args, true)
		if err != nil {
			return nil, err
		}
		n.write(ctx, a.Key, *a.Value, false)
		return map[string]any{"output": nil}, nil
	case "get", "remove":
		a, err := keyValueArgs(m, args, false)
		if err != nil {
			return nil, err
		}
		n.mu.Lock()
		e, ok := kv[a.Key]
		n.mu.Unlock()
		var out any
		if ok && !e.deleted {
			out = e.value
		}
		if m == "remove" && out != nil {
			n.write(ctx, a.Key, "", true)
		}
		return map[string]any{"output": out}, nil
	case "entries", "len":
		if err := noArgs(m, args); err != nil {
			return nil, err
		}
		out := map[string]string{}
		n.mu.Lock()
		for k, e := range kv {
			if !e.deleted {
				out[k] = e.value
			}
		}
		n.mu.Unlock()
		if m == "len" {
			return map[string]any{"output": len(out)}, nil
		}
		return map[string]any{"output": out}, nil
	}
	return nil, &rpcError{Type: "FunctionCallError", Data: fmt.Sprintf("method %q not found", m)}
}

type kvArgs struct {
	Key   string  `json:"key"`
	Value *string `json:"value"`
}

// keyValueArgs decodes {"key"} or {"key","value"} strictly, as the kv-store guest does.
func keyValueArgs(method string, raw json.RawMessage, needValue bool) (*kvArgs, *rpcError) {
	fail := func(msg string) *rpcError {
		return &rpcError{Type: "FunctionCallError", Data: fmt.Sprintf("guest panicked: %s: failed to deserialize arguments: %s", method, msg)}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fail(err.Error())
	}
	var a kvArgs
	for k, v := range fields {
		switch {
		case k == "key":
			if err := json.Unmarshal(v, &a.Key); err != nil {
				return nil, fail("key must be a string")
			}
		case k == "value" && needValue:
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fail("value must be a string")
			}
			a.Value = &s
		default:
			return nil, fail(fmt.Sprintf("unknown field `%s`", k))
		}
	}
	if _, ok := fields["key"]; !ok {
		return nil, fail("missing field `key`")
	}
	if needValue && a.Value == nil {
		return nil, fail("missing field `value`")
	}
	return &a, nil
}

func noArgs(method string, raw json.RawMessage) *rpcError {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" {
		return nil
	}
	return &rpcError{Type: "FunctionCallError", Data: fmt.Sprintf("guest panicked: %s: failed to deserialize arguments: expected no arguments", method)}
}
