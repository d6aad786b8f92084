package adminrpc

import "net/http"

// MetricsTokenFile is the datadir file of the read-only metrics token: a bearer token the admin
// listener accepts for GET /metrics only (never for RPC or pprof), so a Prometheus that scrapes
// the admin listener holds no token that can move funds.
const MetricsTokenFile = "metrics.token"

// SetMetricsToken makes the server accept tok, as a bearer token, for GET /metrics only. Call it
// before serving; an empty tok accepts none.
func (s *Server) SetMetricsToken(tok string) { s.metricsToken = []byte(tok) }

// metricsOnly reports whether r is a GET /metrics carrying the read-only metrics token.
func (s *Server) metricsOnly(r *http.Request) bool {
	return s.metrics != nil && r.URL.Path == "/metrics" && r.Method == http.MethodGet && bearerIs(r, s.metricsToken)
}

// MetricsHandler serves only GET (and HEAD) /metrics from metrics and /healthz, with no token:
// the separate metrics listener (rpc.metrics_addr). Everything else is 404, POST included, so
// the admin API is never reachable through it.
func MetricsHandler(metrics http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		get := r.Method == http.MethodGet || r.Method == http.MethodHead
		switch {
		case r.URL.Path == "/healthz" && get:
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte("ok\n"))
		case r.URL.Path == "/metrics" && get:
			metrics.ServeHTTP(w, r)
		case r.URL.Path == "/metrics" || r.URL.Path == "/healthz":
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
		default:
			http.Error(w, "this is the metrics listener: it serves only /metrics and /healthz", http.StatusNotFound)
		}
	})
}
