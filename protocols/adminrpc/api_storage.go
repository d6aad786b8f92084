package adminrpc

import "context"

// Storage: model_rm, model_pin, repo_gc, repo_stat.

// ModelRmParams are model_rm's params: drop the model's local chunks; Forget also removes its
// manifest from the catalog; Force removes a model this node published.
type ModelRmParams struct {
	ModelID string `json:"model_id"`
	Forget  bool   `json:"forget,omitempty"`
	Force   bool   `json:"force,omitempty"`
}

// ModelRmResult is what model_rm did.
type ModelRmResult struct {
	ModelID    string `json:"model_id"`
	FreedBytes uint64 `json:"freed_bytes"`
	Forgotten  bool   `json:"forgotten"`
}

// ModelPinParams are model_pin's params: Pinned false unpins.
type ModelPinParams struct {
	ModelID string `json:"model_id"`
	Pinned  bool   `json:"pinned"`
}

// ModelPinResult is the model's pin state after model_pin.
type ModelPinResult struct {
	ModelID string `json:"model_id"`
	Pinned  bool   `json:"pinned"`
}

// StorageModel is a model repo_gc removed or kept, with the bytes of its blob; Reason says why
// a kept one stays: published, pinned, open_round, fetching, latest or under_cap.
type StorageModel struct {
	ModelID string `json:"model_id"`
	Name    string `json:"name"`
	Bytes   uint64 `json:"bytes"`
	Reason  string `json:"reason,omitempty"`
}

// RepoGCResult is what repo_gc freed.
type RepoGCResult struct {
	Models     int            `json:"models"` // removed
	FreedBytes uint64         `json:"freed_bytes"`
	Removed    []StorageModel `json:"removed"`
	Kept       []StorageModel `json:"kept"`
}

// RepoStat is repo_stat's result.
type RepoStat struct {
	Models           int    `json:"models"` // in the catalog
	Complete         int    `json:"complete"`
	Partial          int    `json:"partial"`
	BlobBytes        uint64 `json:"blob_bytes"`
	KeysHeld         int    `json:"keys_held"`
	Pinned           int    `json:"pinned"`
	MaxBlobBytes     uint64 `json:"max_blob_bytes"` // 0: no cap
	UsedPercent      uint64 `json:"used_percent,omitempty"`
	ReclaimableBytes uint64 `json:"reclaimable_bytes"` // what repo_gc would free now
}

// ModelRm calls model_rm.
func (c *Client) ModelRm(ctx context.Context, p ModelRmParams) (ModelRmResult, error) {
	var r ModelRmResult
	return r, c.Call(ctx, "model_rm", p, &r)
}

// ModelPin calls model_pin.
func (c *Client) ModelPin(ctx context.Context, modelID string, pinned bool) (ModelPinResult, error) {
	var r ModelPinResult
	return r, c.Call(ctx, "model_pin", ModelPinParams{ModelID: modelID, Pinned: pinned}, &r)
}

// RepoGC calls repo_gc.
func (c *Client) RepoGC(ctx context.Context) (RepoGCResult, error) {
	var r RepoGCResult
	return r, c.Call(ctx, "repo_gc", nil, &r)
}

// RepoStat calls repo_stat.
func (c *Client) RepoStat(ctx context.Context) (RepoStat, error) {
	var r RepoStat
	return r, c.Call(ctx, "repo_stat", nil, &r)
}
