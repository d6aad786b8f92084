package adminrpc

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// servePprof serves Go's profiles at /debug/pprof/ (behind the same token as every other route),
// so a slow daemon can be profiled in place: `go tool pprof -http : 'http://H:P/debug/pprof/profile'`
// with the Authorization header.
func servePprof(w http.ResponseWriter, r *http.Request) {
	switch name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/"); name {
	case "":
		pprof.Index(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "trace":
		pprof.Trace(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	default:
		pprof.Handler(name).ServeHTTP(w, r)
	}
}
