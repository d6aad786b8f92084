package adminrpc

import "context"

// Threshold key escrow: model_escrow, model_coordinators.

// ModelEscrowParams are model_escrow's params: deposit again the key (or each coordinator's
// share) of a model this node published, with the coordinators that do not hold it yet.
type ModelEscrowParams struct {
	ModelID string `json:"model_id"`
}

// EscrowFailure is a coordinator that does not hold its key or share, and why.
type EscrowFailure struct {
	PeerID string `json:"peer_id"`
	Error  string `json:"error"`
}

// ModelEscrowResult says how the model's key is escrowed: Holders coordinators should hold it
// (or a share), Deposited do, Needed must answer for a trainer to unlock it.
type ModelEscrowResult struct {
	ModelID   string          `json:"model_id"`
	Holders   int             `json:"holders"`
	Deposited int             `json:"deposited"`
	Needed    int             `json:"needed"`
	Failed    []EscrowFailure `json:"failed,omitempty"`
}

// ModelCoordinatorsParams are model_coordinators' params: the new coordinator set and threshold
// of a lineage this node published (a signed update every coordinator receives).
type ModelCoordinatorsParams struct {
	ModelID      string   `json:"model_id"`
	Coordinators []string `json:"coordinators"`
	Threshold    uint     `json:"threshold,omitempty"`
}

// ModelCoordinatorsResult is the update signed: its sequence number and how many of the
// coordinators (old and new) accepted it.
type ModelCoordinatorsResult struct {
	Lineage      string          `json:"lineage"`
	Seq          uint64          `json:"seq"`
	Coordinators []string        `json:"coordinators"`
	Threshold    uint            `json:"threshold,omitempty"`
	Accepted     int             `json:"accepted"`
	Failed       []EscrowFailure `json:"failed,omitempty"`
}

// ModelEscrow calls model_escrow.
func (c *Client) ModelEscrow(ctx context.Context, p ModelEscrowParams) (ModelEscrowResult, error) {
	var r ModelEscrowResult
	return r, c.Call(ctx, "model_escrow", p, &r)
}

// ModelCoordinators calls model_coordinators.
func (c *Client) ModelCoordinators(ctx context.Context, p ModelCoordinatorsParams) (ModelCoordinatorsResult, error) {
	var r ModelCoordinatorsResult
	return r, c.Call(ctx, "model_coordinators", p, &r)
}
