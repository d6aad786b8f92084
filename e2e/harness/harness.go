// Package harness is the end-to-end test harness: it builds the califusiond binary once (Build)
// and runs real daemons through node/nodeproc, the process launcher `califusiond devnet` uses
// too. Harness and Node are that package's Cluster and Node under the names the tests read
// (`h.Init(...)`, `n.Start(ctx)`, `h.ConnectAll(ctx)`); only test-specific helpers live here.
package harness

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/califusion/califusion/node/nodeproc"
)

// Harness owns a set of nodes under one directory (nodeproc.Cluster).
type Harness = nodeproc.Cluster

// Node is one califusiond process and its datadir (nodeproc.Node).
type Node = nodeproc.Node

// New returns a harness that runs bin with datadirs under dir.
func New(bin, dir string) *Harness { return nodeproc.New(bin, dir) }

// WaitFor polls cond every 50ms until it returns nil or ctx ends; the last error is returned.
func WaitFor(ctx context.Context, cond func() error) error { return nodeproc.WaitFor(ctx, cond) }

// Build compiles the califusiond binary from the module at moduleDir into outDir.
func Build(ctx context.Context, moduleDir, outDir string) (string, error) {
	bin := filepath.Join(outDir, "califusiond")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/califusiond")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}
