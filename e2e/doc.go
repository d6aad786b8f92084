// Package e2e holds CaliFusion's multi-process end-to-end tests. The harness that runs the
// daemons is e2e/harness; the local network behind `califusiond devnet` is e2e/devnet.
package e2e
