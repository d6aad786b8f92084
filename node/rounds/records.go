package rounds

import (
	"github.com/califusion/califusion/node/secagg"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/store"
)

// The store keeps the node's own record types (store/schema.go); these conversions are the edge
// where a stored round meets the gossip type, so a change on either side is a change here, not
// in the database.

// roundRecord is the stored form of r.
func roundRecord(r *announce.Round) *store.RoundRecord {
	return &store.RoundRecord{
		ID: r.ID, Model: r.Model, Coordinator: r.Coordinator, MinUpdates: r.MinUpdates,
		Deadline: r.Deadline, Rule: r.Rule, ClipNorm: r.ClipNorm, ClipMode: r.ClipMode,
		State: r.State, Updates: r.Updates, Rejected: r.Rejected, NewModel: r.NewModel,
		Error: r.Error, Seq: r.Seq, OpenedAt: r.OpenedAt, MaxSamples: r.MaxSamples,
		Secure: r.Secure, SecAgg: secAggRecord(r.SecAgg), Reopens: r.Reopens,
		Strategy: r.Strategy, ServerLR: r.ServerLR, Momentum: r.Momentum, Beta2: r.Beta2, Tau: r.Tau, ProxMu: r.ProxMu,
		Epochs: r.Epochs, BatchSize: r.BatchSize, LearningRate: r.LearningRate,
		Campaign: (*store.CampaignTagRecord)(r.Campaign),
		Config:   r.Config,
	}
}

// secAggRecord is the stored form of p (nil for nil).
func secAggRecord(p *secagg.Params) *store.SecAggRecord {
	if p == nil {
		return nil
	}
	return &store.SecAggRecord{Neighbours: p.Neighbours, Threshold: p.Threshold, Clip: p.Clip, Bits: p.Bits, MaxWeight: p.MaxWeight}
}

// reportSecAgg is the report's form of p (nil for nil).
func reportSecAgg(p *secagg.Params) *store.ReportSecAgg {
	if p == nil {
		return nil
	}
	return &store.ReportSecAgg{Neighbours: p.Neighbours, Threshold: p.Threshold, Clip: p.Clip, Bits: p.Bits, MaxWeight: p.MaxWeight}
}

// secAggParams is the parameters a stored record stands for (nil for nil).
func secAggParams(r *store.SecAggRecord) *secagg.Params {
	if r == nil {
		return nil
	}
	return &secagg.Params{Neighbours: r.Neighbours, Threshold: r.Threshold, Clip: r.Clip, Bits: r.Bits, MaxWeight: r.MaxWeight}
}

// roundOf is the round a stored record stands for.
func roundOf(rec *store.RoundRecord) announce.Round {
	return announce.Round{
		ID: rec.ID, Model: rec.Model, Coordinator: rec.Coordinator, MinUpdates: rec.MinUpdates,
		Deadline: rec.Deadline, Rule: rec.Rule, ClipNorm: rec.ClipNorm, ClipMode: rec.ClipMode,
		State: rec.State, Updates: rec.Updates, Rejected: rec.Rejected, NewModel: rec.NewModel,
		Error: rec.Error, Seq: rec.Seq, OpenedAt: rec.OpenedAt, MaxSamples: rec.MaxSamples,
		Secure: rec.Secure, SecAgg: secAggParams(rec.SecAgg), Reopens: rec.Reopens,
		Strategy: rec.Strategy, ServerLR: rec.ServerLR, Momentum: rec.Momentum, Beta2: rec.Beta2, Tau: rec.Tau, ProxMu: rec.ProxMu,
		Epochs: rec.Epochs, BatchSize: rec.BatchSize, LearningRate: rec.LearningRate,
		Campaign: (*announce.CampaignTag)(rec.Campaign),
		Config:   rec.Config,
	}
}
