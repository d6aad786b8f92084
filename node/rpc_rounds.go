package node

import (
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/store"
)

func (n *Node) registerRoundRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "round_open", n.rpcRoundOpen)
	adminrpc.Handle(s, "round_list", n.rpcRoundList)
	adminrpc.Handle(s, "round_close", n.rpcRoundClose)
	adminrpc.Handle(s, "round_report", n.rpcRoundReport)
	adminrpc.Handle(s, "train_run", n.rpcTrainRun)
	adminrpc.Handle(s, "update_submit", n.rpcUpdateSubmit)
}

func (n *Node) rpcRoundOpen(ctx context.Context, p adminrpc.RoundOpenParams) (adminrpc.RoundIDParams, error) {
	model, err := n.modelID(p.ModelID) // a prefix names a model in the catalog; rounds takes the full ID
	if err != nil {
		return adminrpc.RoundIDParams{}, err
	}
	id, err := n.rounds.Open(ctx, rounds.OpenParams{
		ModelID: hex.EncodeToString(model[:]), MinUpdates: p.MinUpdates, Deadline: p.Deadline, Rule: p.Rule,
		ClipNorm: p.ClipNorm, ClipMode: p.ClipMode, MaxSamples: p.MaxSamples,
		Secure: p.Secure, Neighbours: p.Neighbours, Threshold: p.Threshold, Clip: p.Clip, Bits: p.Bits,
		Strategy: p.Strategy, ServerLR: p.ServerLR, Momentum: p.Momentum, Beta2: p.Beta2, Tau: p.Tau, ProxMu: p.ProxMu,
		Epochs: p.Epochs, BatchSize: p.BatchSize, LearningRate: p.LearningRate, Config: p.Config,
	})
	return adminrpc.RoundIDParams{RoundID: id}, err
}

func roundInfo(r *announce.Round) adminrpc.RoundInfo {
	info := adminrpc.RoundInfo{
		RoundID: r.ID, ModelID: hex.EncodeToString(r.Model), State: r.State, Updates: r.Updates, MinUpdates: r.MinUpdates,
		Deadline: r.DeadlineTime().Format("2006-01-02T15:04:05.000Z07:00"), Rule: r.Rule, Coordinator: r.Coordinator, Error: r.Error,
		MaxSamples: r.SampleCeiling(), Secure: r.Secure, Reopens: r.Reopens,
		StrategyParams: adminrpc.StrategyParams{Strategy: r.Strategy, ServerLR: r.ServerLR, Momentum: r.Momentum, Beta2: r.Beta2, Tau: r.Tau, ProxMu: r.ProxMu,
			Epochs: r.Epochs, BatchSize: r.BatchSize, LearningRate: r.LearningRate},
		Config: r.Config,
	}
	if r.NewModel != nil {
		info.NewModel = hex.EncodeToString(r.NewModel)
	}
	if r.Campaign != nil {
		info.CampaignID, info.CampaignRound = r.Campaign.ID, r.Campaign.Index
	}
	return info
}

func (n *Node) rpcRoundList(ctx context.Context, p adminrpc.RoundListParams) ([]adminrpc.RoundInfo, error) {
	out := []adminrpc.RoundInfo{}
	var model *content.ModelID
	if p.ModelID != "" {
		id, err := n.modelID(p.ModelID)
		var ae *apierr.Error
		if errors.As(err, &ae) && ae.Data != nil { // an ambiguous prefix: the error lists the matches
			return out, err
		}
		if err != nil {
			return out, nil // no round is on a model that cannot be named
		}
		model = &id
	}
	list, err := n.rounds.List(model)
	if err != nil {
		return out, err
	}
	standings, err := n.rounds.Standings(list, time.Now())
	if err != nil {
		return nil, err
	}
	for i := range list {
		info := roundInfo(&list[i])
		info.Joinable, info.Submitted, info.UpdateID = standings[i].Joinable, standings[i].Submitted, standings[i].UpdateID
		out = append(out, info)
	}
	return out, nil
}

func (n *Node) rpcRoundClose(ctx context.Context, p adminrpc.RoundIDParams) (adminrpc.RoundCloseResult, error) {
	id, err := n.rounds.CloseRound(ctx, p.RoundID)
	return adminrpc.RoundCloseResult{ModelID: id}, err
}

func (n *Node) rpcRoundReport(ctx context.Context, p adminrpc.RoundIDParams) (adminrpc.RoundReport, error) {
	rec, err := n.rounds.Report(ctx, p.RoundID)
	if err != nil {
		return adminrpc.RoundReport{}, err
	}
	return reportOf(rec), nil
}

func (n *Node) rpcTrainRun(ctx context.Context, p adminrpc.TrainRunParams) (adminrpc.TrainRunResult, error) {
	res, err := n.rounds.Train(ctx, rounds.TrainParams{
		RoundID: p.RoundID, Data: p.Data, Hook: p.Hook, Epochs: p.Epochs, BatchSize: p.BatchSize, LearningRate: p.LearningRate,
	})
	if err != nil {
		return adminrpc.TrainRunResult{}, err
	}
	return adminrpc.TrainRunResult{UpdateID: res.UpdateID, Samples: res.Samples, Seconds: res.Seconds}, nil
}

func (n *Node) rpcUpdateSubmit(ctx context.Context, p adminrpc.UpdateSubmitParams) (adminrpc.UpdateSubmitResult, error) {
	res, err := n.rounds.Submit(ctx, p.RoundID, p.UpdateID)
	if err != nil {
		return adminrpc.UpdateSubmitResult{}, err
	}
	return adminrpc.UpdateSubmitResult{Accepted: res.Accepted, Norm: res.Norm, Clipped: res.Clipped, Anchor: res.Anchor, Secure: res.Secure}, nil
}

// The store keeps the node's own record types (store/schema.go); this conversion is the edge
// where a stored report (written by node/rounds) meets the admin API's type, so a change of the
// API is a change here, not in the database.

// reportOf is the admin API's report for a stored record.
func reportOf(rec *store.ReportRecord) adminrpc.RoundReport {
	rep := adminrpc.RoundReport{
		RoundID: rec.RoundID, BaseModel: rec.BaseModel, NewModel: rec.NewModel, Rule: rec.Rule,
		AggregateSHA256: rec.AggregateSHA256, Anchors: rec.Anchors, Metrics: rec.Metrics, Timings: rec.Timings,
		Secure: rec.Secure, Contributors: rec.Contributors, Dropouts: rec.Dropouts, Error: rec.Error,
	}
	if rw := rec.Reward; rw != nil {
		rep.Reward = &adminrpc.RoundReward{Amount: rw.Amount, AmountTokens: rw.AmountTokens, Block: rw.Block, Payer: rw.Payer, Verified: rw.Verified, Warning: rw.Warning}
	}
	if p := rec.SecAgg; p != nil {
		rep.SecAgg = &adminrpc.SecAggParams{Neighbours: p.Neighbours, Threshold: p.Threshold, Clip: p.Clip, Bits: p.Bits, MaxWeight: p.MaxWeight}
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
