package node

import (
	"context"
	"encoding/hex"
	"math/big"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
)

func (n *Node) registerLedgerRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "ledger_balance", n.rpcLedgerBalance)
	adminrpc.Handle(s, "ledger_transfer", n.rpcLedgerTransfer)
}

func (n *Node) rpcLedgerBalance(ctx context.Context, _ adminrpc.Empty) (adminrpc.BalanceResult, error) {
	c, err := n.ledger.Client()
	if err != nil {
		return adminrpc.BalanceResult{}, err
	}
	me := icp.Account{Owner: c.Principal()}
	bal, err := c.Balance(ctx, me)
	if err != nil {
		return adminrpc.BalanceResult{}, ledger.Err(err)
	}
	tok, err := c.Token(ctx)
	if err != nil {
		return adminrpc.BalanceResult{}, ledger.Err(err)
	}
	kind, err := c.Kind(ctx)
	if err != nil {
		return adminrpc.BalanceResult{}, &adminrpc.Error{Code: adminrpc.CodeUnavailable, Message: "the ledger's kind could not be determined: set icp.ledger_kind to icp or icrc3", Data: err.Error()}
	}
	r := adminrpc.BalanceResult{
		Ledger: c.Ledger().Encode(), Account: me.Owner.Encode(), Balance: bal.String(), Decimals: tok.Decimals, Symbol: tok.Symbol,
		LedgerKind: string(kind), BalanceTokens: tok.Format(bal), Fee: tok.Fee.String(), FeeTokens: tok.Format(tok.Fee),
	}
	if kind == icp.KindICP {
		r.AccountID = me.ID().String()
	}
	return r, nil
}

func (n *Node) rpcLedgerTransfer(ctx context.Context, p adminrpc.TransferParams) (adminrpc.TransferResult, error) {
	to, err := principal.Decode(p.ToPrincipal)
	if err != nil {
		return adminrpc.TransferResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "to_principal %q is not a principal", p.ToPrincipal)
	}
	acct := icp.Account{Owner: to}
	if p.ToSubaccount != "" {
		sub, err := hex.DecodeString(p.ToSubaccount)
		if err != nil || len(sub) != 32 {
			return adminrpc.TransferResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "to_subaccount must be 64 hex digits")
		}
		acct.Subaccount = &sub
	}
	amount, ok := new(big.Int).SetString(p.Amount, 10)
	if !ok || amount.Sign() <= 0 {
		return adminrpc.TransferResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "amount %q must be a positive whole number of base units", p.Amount)
	}
	var memo []byte
	if p.Memo != "" {
		if memo, err = hex.DecodeString(p.Memo); err != nil || len(memo) > 32 {
			return adminrpc.TransferResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "memo must be hex of at most 32 bytes")
		}
	}
	c, err := n.ledger.Client()
	if err != nil {
		return adminrpc.TransferResult{}, err
	}
	idx, err := c.Transfer(ctx, acct, amount, memo, time.Now())
	if err != nil {
		return adminrpc.TransferResult{}, ledger.Err(err)
	}
	return adminrpc.TransferResult{Ledger: c.Ledger().Encode(), BlockIndex: idx}, nil
}
