package node

import (
	"testing"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/node/ledger/ledgertest"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
)

// TestFakeLedgerRPC: ledger_balance and ledger_transfer answer from the ledger client.
func TestFakeLedgerRPC(t *testing.T) {
	l := ledgertest.NewFake(1_000)
	n := &Node{ledger: ledger.NewWith(config.Default().ICP, nil, l)}
	payee := ledgertest.Principal("publisher")
	bal, err := n.rpcLedgerBalance(t.Context(), adminrpc.Empty{})
	if err != nil || bal.Balance != "1000" || bal.Fee != "10" || bal.Symbol != "TST" || bal.Account != l.Principal().Encode() || bal.LedgerKind != string(icp.KindICRC3) || bal.AccountID != "" {
		t.Errorf("ledger_balance = %+v, %v", bal, err)
	}
	tr, err := n.rpcLedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: payee.Encode(), Amount: "7", Memo: "abcd"})
	if err != nil || tr.BlockIndex != 0 || tr.Ledger != l.Ledger().Encode() {
		t.Errorf("ledger_transfer = %+v, %v; want block 0", tr, err)
	}
	if _, err := n.rpcLedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: payee.Encode(), Amount: "5000"}); adminrpc.CodeOf(err) != adminrpc.CodeInsufficientFunds {
		t.Errorf("ledger_transfer beyond the balance = %v, want code %d", err, adminrpc.CodeInsufficientFunds)
	}
}
