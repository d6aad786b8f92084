package e2e

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

// TestLedger: two daemons on the emulated ICP ledger (the default configuration's ledger); one
// pays the other through the CLI, amounts read as tokens, node info and ledger balance agree.
func TestLedger(t *testing.T) {
	replica := startICPLedger(t, icptest.Options{})
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
	out := cli(t, false, "--datadir", a.Datadir, "--json", "ledger", "transfer", b.Info().ICPPrincipal, "--amount", "0.0025", "--memo", "abcd")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("ledger transfer --json printed %q: %v", out, err)
	}
	if res.Ledger != icptest.LedgerID || res.BlockIndex != 1 {
		t.Errorf("ledger transfer = %+v, want block 1 of %s", res, icptest.LedgerID)
	}
	for node, want := range map[*harness.Node]string{a: "740000", b: "250000"} {
		n := node.Datadir
		var bal adminrpc.BalanceResult
		if err := json.Unmarshal([]byte(cli(t, false, "--datadir", n, "--json", "ledger", "balance")), &bal); err != nil {
			t.Fatal(err)
		}
		if bal.Balance != want || bal.Symbol != "ICP" || bal.Decimals != 8 || bal.LedgerKind != "icp" || bal.Fee != "10000" || bal.FeeTokens != "0.0001 ICP" {
			t.Errorf("ledger balance of %s = %+v, want %s ICP on the icp ledger kind", n, bal, want)
		}
		ni, err := node.Client().NodeInfo(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if ni.ICPPrincipal != bal.Account || ni.ICPAccountID != bal.AccountID || bal.AccountID == "" || ni.ICPLedgerKind != "icp" {
			t.Errorf("node info (%s, %s, %s) and ledger balance (%s, %s) disagree", ni.ICPPrincipal, ni.ICPAccountID, ni.ICPLedgerKind, bal.Account, bal.AccountID)
		}
		if acct := strings.TrimSpace(cli(t, false, "--datadir", n, "ledger", "account")); acct != bal.AccountID {
			t.Errorf("ledger account printed %q, want %s", acct, bal.AccountID)
		}
	}
	if human := cli(t, false, "--datadir", b.Datadir, "ledger", "balance"); !strings.Contains(human, "0.0025 ICP (250000 base units)") {
		t.Errorf("ledger balance printed %q, want the balance as tokens with base units", human)
	}
	_, err := a.Client().LedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: b.Info().ICPPrincipal, Amount: "99999999"})
	var ae *adminrpc.Error
	if !errors.As(err, &ae) || ae.Code != adminrpc.CodeInsufficientFunds || !strings.Contains(ae.Message, "0.0074 ICP") || !strings.Contains(ae.Message, "1.00009999 ICP") {
		t.Errorf("overspending ledger_transfer = %v, want code %d stating the balance (0.0074 ICP) and amount + fee (1.00009999 ICP)", err, adminrpc.CodeInsufficientFunds)
	}
	if _, err := a.Client().LedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: "nope", Amount: "1"}); adminrpc.CodeOf(err) != adminrpc.CodeInvalidParams {
		t.Errorf("ledger_transfer to a bad principal = %v, want code %d", err, adminrpc.CodeInvalidParams)
	}
	if _, err := nodes[2].Client().LedgerBalance(t.Context()); adminrpc.CodeOf(err) != adminrpc.CodeUnavailable {
		t.Errorf("ledger_balance with no replica = %v, want code %d", err, adminrpc.CodeUnavailable)
	}
}
