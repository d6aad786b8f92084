package adminrpc

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits of the transport (shared/API.md).
const (
	MaxBody  = 5 << 20
	MaxBatch = 100
)

// HandlerFunc serves one method: it receives the raw params (nil when absent) and returns a
// JSON-encodable result.
type HandlerFunc func(ctx context.Context, params json.RawMessage) (any, error)

// Server dispatches JSON-RPC calls to registered methods.
type Server struct {
	token    []byte
	methods  map[string]HandlerFunc
	log      *slog.Logger
	metrics  http.Handler
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec

	metricsToken []byte // read-only: GET /metrics only (metrics_token.go)
}

// NewServer returns a server that accepts token and serves metrics from metrics (nil: no
// /metrics). reg, when not nil, receives the server's own call counters.
func NewServer(token string, log *slog.Logger, metrics http.Handler, reg prometheus.Registerer) *Server {
	s := &Server{
		token:   []byte(token),
		methods: map[string]HandlerFunc{},
		log:     log,
		metrics: metrics,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "califusion_rpc_calls_total", Help: "Admin RPC calls by method and result code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "califusion_rpc_call_seconds", Help: "Admin RPC call latency by method.",
		}, []string{"method"}),
	}
	if reg != nil {
		reg.MustRegister(s.calls, s.duration)
	}
	return s
}

// Register adds a method; registering a name twice panics (a programming error at start-up).
func (s *Server) Register(name string, h HandlerFunc) {
	if _, dup := s.methods[name]; dup {
		panic("adminrpc: method registered twice: " + name)
	}
	s.methods[name] = h
}

// Methods lists the registered method names, sorted.
func (s *Server) Methods() []string {
	names := make([]string, 0, len(s.methods))
	for n := range s.methods {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Handle registers a typed method: params are decoded strictly into P (unknown fields are
// invalid params) and the result R is encoded as the response.
func Handle[P, R any](s *Server, name string, fn func(ctx context.Context, p P) (R, error)) {
	s.Register(name, func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p P
		if len(raw) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				return nil, &Error{Code: CodeInvalidParams, Message: "invalid params: " + describeJSONError(err)}
			}
			if dec.More() {
				return nil, &Error{Code: CodeInvalidParams, Message: "invalid params: trailing data after the params object"}
			}
		}
		return fn(ctx, p)
	})
}

func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("field %q must be a %s", te.Field, te.Type)
	}
	return err.Error()
}

// ServeHTTP implements the transport rules in the package comment.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
		return
	}
	if r.Header.Get("Origin") != "" || r.Header.Get("Referer") != "" {
		http.Error(w, "requests from browsers are refused", http.StatusForbidden)
		return
	}
	if !s.authorized(r) {
		if s.metricsOnly(r) {
			s.metrics.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="califusiond"`)
		http.Error(w, "missing or wrong bearer token: read it from <datadir>/rpc.token", http.StatusUnauthorized)
		return
	}
	switch {
	case r.URL.Path == "/metrics" && r.Method == http.MethodGet && s.metrics != nil:
		s.metrics.ServeHTTP(w, r)
	case strings.HasPrefix(r.URL.Path, "/debug/pprof/") && r.Method == http.MethodGet:
		servePprof(w, r)
	case r.URL.Path == "/" && r.Method == http.MethodPost:
		s.serveRPC(w, r)
	case r.URL.Path == "/":
		w.Header().Set("Allow", "POST")
		http.Error(w, "use POST with a JSON-RPC 2.0 body", http.StatusMethodNotAllowed)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) authorized(r *http.Request) bool { return bearerIs(r, s.token) }

// bearerIs reports, in constant time for tokens of tok's length, whether r carries the bearer
// token tok (never for an empty tok).
func bearerIs(r *http.Request, tok []byte) bool {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(tok) == 0 || len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(h[len(prefix):]), tok) == 1
}

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	ID      json.RawMessage `json:"id"`
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  any             `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
	ID      json.RawMessage `json:"id"`
}

var nullID = json.RawMessage("null")

func (s *Server) serveRPC(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request body exceeds "+strconv.Itoa(MaxBody)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read request: "+err.Error(), http.StatusBadRequest)
		return
	}
	out := s.Dispatch(r.Context(), body)
	if out == nil { // only notifications
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

// Dispatch decodes one JSON-RPC body (a call or a batch), runs it and returns the encoded reply,
// or nil when nothing needs an answer (notifications only).
func (s *Server) Dispatch(ctx context.Context, body []byte) []byte {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var batch []json.RawMessage
		if err := json.Unmarshal(trimmed, &batch); err != nil {
			return mustEncode(response{JSONRPC: "2.0", Error: &Error{Code: CodeParse, Message: "parse error: " + err.Error()}, ID: nullID})
		}
		if len(batch) == 0 {
			return mustEncode(response{JSONRPC: "2.0", Error: &Error{Code: CodeInvalidRequest, Message: "invalid request: empty batch"}, ID: nullID})
		}
		if len(batch) > MaxBatch {
			return mustEncode(response{JSONRPC: "2.0", Error: &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("invalid request: batch of %d calls exceeds the limit of %d", len(batch), MaxBatch)}, ID: nullID})
		}
		var replies []response
		for _, raw := range batch {
			if resp, ok := s.call(ctx, raw); ok {
				replies = append(replies, resp)
			}
		}
		if len(replies) == 0 {
			return nil
		}
		return mustEncode(replies)
	}
	if !json.Valid(trimmed) {
		return mustEncode(response{JSONRPC: "2.0", Error: &Error{Code: CodeParse, Message: "parse error: body is not valid JSON"}, ID: nullID})
	}
	resp, ok := s.call(ctx, trimmed)
	if !ok {
		return nil
	}
	return mustEncode(resp)
}

// call runs one request object; ok is false for a valid notification (no reply).
func (s *Server) call(ctx context.Context, raw json.RawMessage) (resp response, ok bool) {
	resp = response{JSONRPC: "2.0", ID: nullID}
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		resp.Error = &Error{Code: CodeInvalidRequest, Message: "invalid request: " + err.Error()}
		return resp, true
	}
	if len(req.ID) > 0 {
		if !validID(req.ID) {
			resp.Error = &Error{Code: CodeInvalidRequest, Message: "invalid request: id must be a string, number or null"}
			return resp, true
		}
		resp.ID = req.ID
	}
	if req.JSONRPC != "2.0" || req.Method == "" {
		resp.Error = &Error{Code: CodeInvalidRequest, Message: `invalid request: need "jsonrpc": "2.0" and a method`}
		return resp, true
	}
	if len(req.Params) > 0 {
		if c := bytes.TrimSpace(req.Params)[0]; c != '{' && c != '[' && c != 'n' {
			resp.Error = &Error{Code: CodeInvalidRequest, Message: "invalid request: params must be an object"}
			return resp, true
		}
	}
	notification := len(req.ID) == 0
	result, err := s.invoke(ctx, req)
	if notification {
		return resp, false
	}
	if err != nil {
		resp.Error = toRPCError(err)
	} else {
		resp.Result = result
		if result == nil {
			resp.Result = struct{}{}
		}
	}
	return resp, true
}

func (s *Server) invoke(ctx context.Context, req request) (result any, err error) {
	h, found := s.methods[req.Method]
	if !found {
		s.calls.WithLabelValues("unknown", strconv.Itoa(CodeMethodNotFound)).Inc()
		return nil, &Error{Code: CodeMethodNotFound, Message: fmt.Sprintf("method %q not found", req.Method)}
	}
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("rpc handler panicked", "method", req.Method, "panic", p, "stack", string(debug.Stack()))
			result, err = nil, &Error{Code: CodeInternal, Message: "internal error"}
		}
		s.duration.WithLabelValues(req.Method).Observe(time.Since(start).Seconds())
		code := 0
		if err != nil {
			code = toRPCError(err).Code
		}
		s.calls.WithLabelValues(req.Method, strconv.Itoa(code)).Inc()
		s.log.Debug("rpc call", "method", req.Method, "code", code, "took", time.Since(start))
	}()
	return h(ctx, req.Params)
}

func toRPCError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

func validID(id json.RawMessage) bool {
	switch c := bytes.TrimSpace(id)[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9', c == 'n':
		return true
	}
	return false
}

func mustEncode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(response{JSONRPC: "2.0", Error: &Error{Code: CodeInternal, Message: "encode result: " + err.Error()}, ID: nullID})
	}
	return b
}
