package e2e

import (
	"crypto/ed25519"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aviate-labs/agent-go/identity"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

// TestJSAgentAgainstEmulator runs DFINITY's JavaScript agent (@dfinity/agent 3.4.3, installed by
// .ci/run into e2e/jsagent) against the ICP emulator, so the emulator is held to a second real
// client. It is skipped only where node or the installed packages are absent.
func TestJSAgentAgainstEmulator(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	if _, err := os.Stat(filepath.Join("jsagent", "node_modules", "@dfinity", "agent")); err != nil {
		t.Skip("run `npm ci --prefix e2e/jsagent` (done by .ci/run) to install @dfinity/agent")
	}
	replica := startReplica(t)
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	key := ed25519.NewKeyFromSeed(seed)
	id, err := identity.NewEd25519Identity(key.Public().(ed25519.PublicKey), key)
	if err != nil {
		t.Fatal(err)
	}
	replica.Mint(id.Sender(), 1_000_000)
	out, err := exec.CommandContext(t.Context(), node, filepath.Join("jsagent", "check.mjs"), replica.URL(), icptest.LedgerID, hex.EncodeToString(seed), "aaaaa-aa").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("JS agent check failed (%v):\n%s", err, out)
	}
}
