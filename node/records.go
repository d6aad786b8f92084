package node

import (
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/store"
)

// The store keeps the node's own record types (store/schema.go); these conversions are the edges
// where a stored round meets the gossip type and a stored report meets the admin API's type, so
// a change on either side is a change here, not in the database.

// roundRecord is the stored form of r.
func roundRecord(r *announce.Round) *store.RoundRecord {
	return &store.RoundRecord{
		ID: r.ID, Model: r.Model, Coordinator: r.Coordinator, MinUpdates: r.MinUpdates,
		Deadline: r.Deadline, Rule: r.Rule, ClipNorm: r.ClipNorm, ClipMode: r.ClipMode,
		State: r.State, Updates: r.Updates, Rejected: r.Rejected, NewModel: r.NewModel,
		Error: r.Error, Seq: r.Seq, OpenedAt: r.OpenedAt, MaxSamples: r.MaxSamples,
	}
}

// roundOf is the round a stored record stands for.
func roundOf(rec *store.RoundRecord) announce.Round {
	return announce.Round{
		ID: rec.ID, Model: rec.Model, Coordinator: rec.Coordinator, MinUpdates: rec.MinUpdates,
		Deadline: rec.Deadline, Rule: rec.Rule, ClipNorm: rec.ClipNorm, ClipMode: rec.ClipMode,
		State: rec.State, Updates: rec.Updates, Rejected: rec.Rejected, NewModel: rec.NewModel,
		Error: rec.Error, Seq: rec.Seq, OpenedAt: rec.OpenedAt, MaxSamples: rec.MaxSamples,
	}
}

// reportRecord is the stored form of a round report. Empty and missing lists stay as they are:
// the API answers [] for the one and null for the other.
func reportRecord(rep *adminrpc.RoundReport) *store.ReportRecord {
	rec := &store.ReportRecord{
		RoundID: rep.RoundID, BaseModel: rep.BaseModel, NewModel: rep.NewModel, Rule: rep.Rule,
		AggregateSHA256: rep.AggregateSHA256, Anchors: rep.Anchors, Metrics: rep.Metrics, Timings: rep.Timings,
	}
	if rep.Participants != nil {
		rec.Participants = make([]store.ParticipantRecord, len(rep.Participants))
		for i, p := range rep.Participants {
			rec.Participants[i] = store.ParticipantRecord{
				PeerID: p.PeerID, Samples: p.Samples, Norm: p.Norm, Accepted: p.Accepted,
				Reason: p.Reason, Clipped: p.Clipped, SHA256: p.SHA256, Metrics: p.Metrics,
			}
		}
	}
	return rec
}

// reportOf is the admin API's report for a stored record.
func reportOf(rec *store.ReportRecord) adminrpc.RoundReport {
	rep := adminrpc.RoundReport{
		RoundID: rec.RoundID, BaseModel: rec.BaseModel, NewModel: rec.NewModel, Rule: rec.Rule,
		AggregateSHA256: rec.AggregateSHA256, Anchors: rec.Anchors, Metrics: rec.Metrics, Timings: rec.Timings,
	}
	if rec.Participants != nil {
		rep.Participants = make([]adminrpc.Participant, len(rec.Participants))
		for i, p := range rec.Participants {
			rep.Participants[i] = adminrpc.Participant{
				PeerID: p.PeerID, Samples: p.Samples, Norm: p.Norm, Accepted: p.Accepted,
				Reason: p.Reason, Clipped: p.Clipped, SHA256: p.SHA256, Metrics: p.Metrics,
			}
		}
	}
	return rep
}
