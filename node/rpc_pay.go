package node

import (
	"context"

	"github.com/califusion/califusion/protocols/adminrpc"
)

func (n *Node) registerPayRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "model_pay", n.rpcModelPay)
	adminrpc.Handle(s, "model_unlock", n.rpcModelUnlock)
}

func (n *Node) rpcModelPay(ctx context.Context, p adminrpc.PayParams) (adminrpc.PayResult, error) {
	r, err := n.lookup(ctx, p.ModelID)
	if err != nil {
		return adminrpc.PayResult{}, err
	}
	paid, err := n.keys.Pay(ctx, r, p.Again)
	if err != nil {
		return adminrpc.PayResult{}, err
	}
	return adminrpc.PayResult{Ledger: paid.Ledger, BlockIndex: paid.Block, Amount: paid.Amount, Memo: paid.Memo, AlreadyPaid: paid.AlreadyPaid}, nil
}

func (n *Node) rpcModelUnlock(ctx context.Context, p adminrpc.UnlockParams) (adminrpc.UnlockResult, error) {
	r, err := n.lookup(ctx, p.ModelID)
	if err != nil {
		return adminrpc.UnlockResult{}, err
	}
	if err := n.keys.Unlock(ctx, r, p.BlockIndex, p.Ledger); err != nil {
		return adminrpc.UnlockResult{}, err
	}
	return adminrpc.UnlockResult{Unlocked: true}, nil
}
