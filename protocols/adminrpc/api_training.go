package adminrpc

import "context"

// Training contexts: training_join.

// TrainingJoinParams are training_join's params: a model of the lineage whose training context
// to join.
type TrainingJoinParams struct {
	ModelID string `json:"model_id"`
}

// TrainingContext is a lineage's Calimero training context as this node uses it: created by it
// (a coordinator of the lineage) or joined on its own merod after an invitation.
type TrainingContext struct {
	Lineage     string `json:"lineage"`
	ContextID   string `json:"context_id"`
	NamespaceID string `json:"namespace_id"`
	Executor    string `json:"executor"`
	Coordinator string `json:"coordinator"`
	Created     bool   `json:"created"`
}

// TrainingJoin joins (or, on a coordinator of the lineage, creates) the training context of a
// model's lineage.
func (c *Client) TrainingJoin(ctx context.Context, p TrainingJoinParams) (TrainingContext, error) {
	var r TrainingContext
	return r, c.Call(ctx, "training_join", p, &r)
}
