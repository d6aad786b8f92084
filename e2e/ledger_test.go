package e2e

import (
	"encoding/json"
	"testing"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/e2e/icpsim"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// TestLedger: two daemons on the ICP emulator; one pays the other through the CLI.
func TestLedger(t *testing.T) {
	replica := startReplica(t)
	c := newCluster(t)
	nodes := c.NewNodes("l", 3, "trainer")
	useReplica(t, replica.URL(), nodes[:2]...)
	useReplica(t, "http://127.0.0.1:1", nodes[2]) // nothing listens there
	for _, n := range nodes {
		c.start(n)
	}
	a, b := nodes[0], nodes[1]
	replica.Mint(principal.MustDecode(a.Info().ICPPrincipal), 1_000_000)

	var res adminrpc.TransferResult
	out := cli(t, false, "--datadir", a.Datadir, "--json", "ledger", "transfer", b.Info().ICPPrincipal, "250000", "--memo", "abcd")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("ledger transfer --json printed %q: %v", out, err)
	}
	if res.Ledger != icpsim.LedgerID || res.BlockIndex != 1 {
		t.Errorf("ledger transfer = %+v, want block 1 of %s", res, icpsim.LedgerID)
	}
	for n, want := range map[string]string{a.Datadir: "740000", b.Datadir: "250000"} {
		var bal adminrpc.BalanceResult
		if err := json.Unmarshal([]byte(cli(t, false, "--datadir", n, "--json", "ledger", "balance")), &bal); err != nil {
			t.Fatal(err)
		}
		if bal.Balance != want || bal.Symbol != "ICP" || bal.Decimals != 8 {
			t.Errorf("ledger balance of %s = %+v, want %s ICP", n, bal, want)
		}
	}
	_, err := a.Client().LedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: b.Info().ICPPrincipal, Amount: "99999999"})
	if adminrpc.CodeOf(err) != adminrpc.CodeInvalidParams {
		t.Errorf("overspending ledger_transfer = %v, want code %d", err, adminrpc.CodeInvalidParams)
	}
	if _, err := a.Client().LedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: "nope", Amount: "1"}); adminrpc.CodeOf(err) != adminrpc.CodeInvalidParams {
		t.Errorf("ledger_transfer to a bad principal = %v, want code %d", err, adminrpc.CodeInvalidParams)
	}
	if _, err := nodes[2].Client().LedgerBalance(t.Context()); adminrpc.CodeOf(err) != adminrpc.CodeUnavailable {
		t.Errorf("ledger_balance with no replica = %v, want code %d", err, adminrpc.CodeUnavailable)
	}
}
