package node

import (
	"context"
	"encoding/hex"

	"github.com/califusion/califusion/protocols/adminrpc"
)

func (n *Node) registerTrainingRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "training_join", n.rpcTrainingJoin)
}

func (n *Node) rpcTrainingJoin(ctx context.Context, p adminrpc.TrainingJoinParams) (adminrpc.TrainingContext, error) {
	r, err := n.lookupLocal(p.ModelID)
	if err != nil {
		return adminrpc.TrainingContext{}, err
	}
	lineage := r.Lineage()
	t, err := n.anchoring.Training(ctx, lineage)
	if err != nil {
		return adminrpc.TrainingContext{}, err
	}
	return adminrpc.TrainingContext{
		Lineage: hex.EncodeToString(lineage[:]), ContextID: t.ContextID, NamespaceID: t.NamespaceID,
		Executor: t.Executor, Coordinator: t.Coordinator.String(), Created: t.Created,
	}, nil
}
