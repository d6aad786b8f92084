package main

import (
	"os/exec"
	"strings"
	"testing"
)

// e2ePackages lists the packages of this module under an e2e/ directory that pkg links, as
// `go list -deps` reports them; it fails the test if the list of this module's packages is empty.
func e2ePackages(t *testing.T, pkg string) []string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", "list", "-deps", "-f", "{{if and .Module .Module.Main}}{{.Module.Path}} {{.ImportPath}}{{end}}", pkg)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	var own, e2e []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		mod, path, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		own = append(own, path)
		if rel := strings.TrimPrefix(path, mod); strings.Contains(rel+"/", "/e2e/") {
			e2e = append(e2e, path)
		}
	}
	if len(own) == 0 {
		t.Fatalf("go list -deps %s listed none of this module's packages", pkg)
	}
	return e2e
}

// TestDaemonLinksNoE2E: the shipped daemon links nothing from e2e/; the devnet (node/devnet), its
// process launcher (node/nodeproc) and the emulators (protocols/icp/icptest,
// protocols/calimero/calimerotest) are product code.
func TestDaemonLinksNoE2E(t *testing.T) {
	if got := e2ePackages(t, "."); len(got) > 0 {
		t.Errorf("califusiond links %v, want no package under e2e/", got)
	}
	// The check sees e2e/ packages where they are linked: benchnet links e2e/harness.
	if got := e2ePackages(t, "../../e2e/benchnet"); len(got) == 0 {
		t.Errorf("e2ePackages(e2e/benchnet) = %v, want e2e/benchnet and e2e/harness", got)
	}
}
