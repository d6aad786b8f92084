package adminrpc

import "context"

// JobInfo is one job in job_list and the result of job_cancel. Times are RFC 3339; EndedAt is
// empty while the job is queued or running.
type JobInfo struct {
	JobID      string `json:"job_id"`
	Kind       string `json:"kind"`    // "fetch"
	Subject    string `json:"subject"` // a fetch's model ID
	State      string `json:"state"`   // queued | running | done | failed | cancelled
	BytesDone  uint64 `json:"bytes_done"`
	BytesTotal uint64 `json:"bytes_total"`
	Peers      int    `json:"peers"`
	Error      string `json:"error,omitempty"`
	StartedAt  string `json:"started_at"`
	EndedAt    string `json:"ended_at,omitempty"`
}

// LogLevelParams are the params of node_log_level: debug, info, warn or error.
type LogLevelParams struct {
	Level string `json:"level"`
}

// LogLevelResult is the result of node_log_level.
type LogLevelResult struct {
	Old string `json:"old"`
	New string `json:"new"`
}

// JobList calls job_list: every job this node knows, newest first.
func (c *Client) JobList(ctx context.Context) ([]JobInfo, error) {
	var r []JobInfo
	return r, c.Call(ctx, "job_list", nil, &r)
}

// JobCancel calls job_cancel: it stops a running job and returns its final state.
func (c *Client) JobCancel(ctx context.Context, jobID string) (JobInfo, error) {
	var r JobInfo
	return r, c.Call(ctx, "job_cancel", JobIDParams{JobID: jobID}, &r)
}

// NodeLogLevel calls node_log_level.
func (c *Client) NodeLogLevel(ctx context.Context, level string) (LogLevelResult, error) {
	var r LogLevelResult
	return r, c.Call(ctx, "node_log_level", LogLevelParams{Level: level}, &r)
}
