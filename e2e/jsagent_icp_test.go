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
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

// TestJSLedgerICPAgainstEmulator runs DFINITY's ICP ledger client (@dfinity/ledger-icp 6.1.2 on
// the JS agent 3.4.3) against the emulator in ICP-ledger mode: balances by account identifier,
// icrc1_transfer, query_blocks, query_encoded_blocks with archives and the certified tip. It is
// skipped only where node or the installed packages are absent.
func TestJSLedgerICPAgainstEmulator(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	if _, err := os.Stat(filepath.Join("jsagent", "node_modules", "@dfinity", "ledger-icp")); err != nil {
		t.Skip("run `npm ci --prefix e2e/jsagent` to install @dfinity/ledger-icp")
	}
	replica := startICPLedger(t, icptest.Options{ArchiveBelow: 2})
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i + 7)
	}
	key := ed25519.NewKeyFromSeed(seed)
	id, err := identity.NewEd25519Identity(key.Public().(ed25519.PublicKey), key)
	if err != nil {
		t.Fatal(err)
	}
	replica.Mint(id.Sender(), 1_000_000)
	replica.Mint(id.Sender(), 1)
	replica.Mint(id.Sender(), 2)
	out, err := exec.CommandContext(t.Context(), node, filepath.Join("jsagent", "check_icp.mjs"), replica.URL(), icptest.LedgerID, hex.EncodeToString(seed), "aaaaa-aa").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("@dfinity/ledger-icp check failed (%v):\n%s", err, out)
	}
}

// TestDfxPEMPrincipalMatchesDFINITY: the principal and account identifier califusiond derives from
// a dfx secp256k1 PEM are the ones DFINITY's JS libraries derive from the same file.
func TestDfxPEMPrincipalMatchesDFINITY(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	if _, err := os.Stat(filepath.Join("jsagent", "node_modules", "@dfinity", "identity-secp256k1")); err != nil {
		t.Skip("run `npm ci --prefix e2e/jsagent` to install @dfinity/identity-secp256k1")
	}
	path := writeDfxSecp256k1PEM(t)
	raw, _ := os.ReadFile(path)
	id, err := icp.ParseIdentityPEM(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), node, filepath.Join("jsagent", "principal.mjs"), path).CombinedOutput()
	if err != nil {
		t.Fatalf("principal.mjs: %v\n%s", err, out)
	}
	want := id.Sender().Encode() + "\n" + icp.Account{Owner: id.Sender()}.ID().String()
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("DFINITY derives\n%s\nfrom the PEM, califusiond\n%s", got, want)
	}
}
