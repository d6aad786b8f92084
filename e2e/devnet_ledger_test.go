package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/protocols/icp"
)

// TestDevnetLedgerKinds runs the whole devnet story (publish, pay, unlock, export, rounds) on the
// default ledger (the ICP ledger itself: protobuf blocks, no ICRC-3) and on an ICRC-3 ledger
// (--ledger icrc), and checks every node verified payments with the matching path.
func TestDevnetLedgerKinds(t *testing.T) {
	for _, tc := range []struct {
		args []string
		kind string
	}{
		{nil, "icp"},
		{[]string{"--ledger", "icrc"}, "icrc3"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			dir := t.TempDir()
			out := cli(t, false, append([]string{"devnet", "--dir", dir, "--json", "--trainers", "2", "--rounds", "2"}, tc.args...)...)
			var rep devnet.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("devnet --json output is not a report: %v\n%s", err, out)
			}
			if rep.Model == nil || len(rep.Model.Fetches) != 2 {
				t.Fatalf("devnet model report = %+v, want 2 fetches", rep.Model)
			}
			for _, f := range rep.Model.Fetches {
				if !f.ExportOK || f.Paid != devnet.DemoPrice {
					t.Errorf("trainer %s: paid %s, export ok %v; want the price paid (and verified) and the exact bytes", f.Node, f.Paid, f.ExportOK)
				}
			}
			if rep.Training == nil || len(rep.Training.Rounds) != 2 || rep.Training.Rounds[1].Updates != 2 {
				t.Errorf("devnet training = %+v, want 2 rounds of 2 updates", rep.Training)
			}
			for _, n := range rep.Nodes {
				if n.Stopped {
					continue // the coordinator the story killed
				}
				if n.LedgerKind != tc.kind || n.BalanceTokens == "" {
					t.Errorf("node %s: ledger kind %q, balance %q; want %s and a token balance", n.Name, n.LedgerKind, n.BalanceTokens, tc.kind)
				}
				if tc.kind == "icp" {
					if _, err := icp.ParseAccountID(n.AccountID); err != nil {
						t.Errorf("node %s: account id %q: %v", n.Name, n.AccountID, err)
					}
				}
			}
			raw, err := os.ReadFile(filepath.Join(dir, "devnet.json"))
			if err != nil {
				t.Fatal(err)
			}
			var f devnet.File
			if err := json.Unmarshal(raw, &f); err != nil || f.ICP == nil || f.ICP.LedgerKind != tc.kind {
				t.Errorf("devnet.json icp = %+v, %v; want ledger kind %s", f.ICP, err, tc.kind)
			}
			checkDevnetAdditions(t, &rep, &f, 2)
		})
	}
}
