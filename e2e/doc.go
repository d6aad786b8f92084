// Package e2e holds CaliFusion's multi-process end-to-end tests. The harness that runs the
// daemons is e2e/harness (built on node/nodeproc); the local network behind `califusiond devnet`
// is node/devnet, and the ICP and Calimero emulators are protocols/icp/icptest and
// protocols/calimero/calimerotest. e2e/benchnet prints the benchmark tables.
package e2e
