package node

import (
	"context"
	"errors"
	"time"

	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// registerJobRPC registers the job methods beyond job_status.
func (n *Node) registerJobRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "job_list", n.rpcJobList)
	adminrpc.Handle(s, "job_cancel", n.rpcJobCancel)
}

func (n *Node) rpcJobList(ctx context.Context, _ struct{}) ([]adminrpc.JobInfo, error) {
	list, err := n.jobs.List()
	if err != nil {
		return nil, err
	}
	out := make([]adminrpc.JobInfo, 0, len(list))
	for _, s := range list {
		out = append(out, jobInfo(s))
	}
	return out, nil
}

func (n *Node) rpcJobCancel(ctx context.Context, p adminrpc.JobIDParams) (adminrpc.JobInfo, error) {
	if p.JobID == "" {
		return adminrpc.JobInfo{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "job_id is required")
	}
	s, err := n.jobs.Cancel(ctx, p.JobID)
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return adminrpc.JobInfo{}, adminrpc.Errorf(adminrpc.CodeNotFound, "job %q is not known", p.JobID)
	case errors.Is(err, jobs.ErrFinished):
		return adminrpc.JobInfo{}, &adminrpc.Error{Code: adminrpc.CodeConflict, Message: "job " + p.JobID + " has already ended (" + s.State + "): nothing to cancel", Data: jobInfo(s)}
	case err != nil:
		return adminrpc.JobInfo{}, err
	}
	return jobInfo(s), nil
}

func jobInfo(s jobs.Status) adminrpc.JobInfo {
	j := adminrpc.JobInfo{JobID: s.ID, Kind: s.Kind, Subject: s.Subject, State: s.State, BytesDone: s.BytesDone,
		BytesTotal: s.BytesTotal, Peers: s.Peers, Error: s.Error, StartedAt: s.Created.UTC().Format(time.RFC3339)}
	if !s.Ended.IsZero() {
		j.EndedAt = s.Ended.UTC().Format(time.RFC3339)
	}
	return j
}
