// Package adminrpc is califusiond's admin API: JSON-RPC 2.0 over HTTP on a loopback listener,
// guarded by a bearer token, with the limits and error codes of shared/API.md, and the typed Go
// client that the CLI and the end-to-end tests use.
//
// Transport rules enforced by Server:
//
//	POST /          JSON-RPC 2.0 request or batch (≤ MaxBatch calls, body ≤ MaxBody bytes)
//	GET  /metrics   Prometheus text format (token required)
//	GET  /healthz   "ok" (no token)
//
// Every other request needs "Authorization: Bearer <token>" (401 without it) and must carry
// neither Origin nor Referer (403), which keeps browsers and DNS-rebinding pages out.
package adminrpc
