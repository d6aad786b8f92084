package node

import (
	"context"
	"encoding/hex"
	"errors"
	"sort"

	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/store"
)

func (n *Node) registerRoundRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "round_open", n.rpcRoundOpen)
	adminrpc.Handle(s, "round_list", n.rpcRoundList)
	adminrpc.Handle(s, "round_close", n.rpcRoundClose)
	adminrpc.Handle(s, "round_report", n.rpcRoundReport)
	adminrpc.Handle(s, "train_run", n.rounds.trainRun)
	adminrpc.Handle(s, "update_submit", n.rounds.submit)
}

func (n *Node) rpcRoundOpen(ctx context.Context, p adminrpc.RoundOpenParams) (adminrpc.RoundIDParams, error) {
	switch {
	case p.MaxSamples == 0:
		p.MaxSamples = announce.DefaultMaxSamples
	case p.MaxSamples > announce.MaxSampleCeiling:
		return adminrpc.RoundIDParams{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "max_samples %d is more than %d: give the most samples one trainer may claim", p.MaxSamples, uint64(announce.MaxSampleCeiling))
	}
	id, err := n.rounds.open(ctx, p)
	return adminrpc.RoundIDParams{RoundID: id}, err
}

func roundInfo(r *announce.Round) adminrpc.RoundInfo {
	info := adminrpc.RoundInfo{
		RoundID: r.ID, ModelID: hex.EncodeToString(r.Model), State: r.State, Updates: r.Updates, MinUpdates: r.MinUpdates,
		Deadline: r.DeadlineTime().Format("2006-01-02T15:04:05.000Z07:00"), Rule: r.Rule, Coordinator: r.Coordinator, Error: r.Error,
		MaxSamples: r.SampleCeiling(),
	}
	if r.NewModel != nil {
		info.NewModel = hex.EncodeToString(r.NewModel)
	}
	return info
}

func (n *Node) rpcRoundList(ctx context.Context, p adminrpc.RoundListParams) ([]adminrpc.RoundInfo, error) {
	var rounds []announce.Round
	err := n.store.Scan(store.RoundPrefix(), func(_ store.Key, decode func(any) error) error {
		var rec store.RoundRecord
		if decode(&rec) == nil && (p.ModelID == "" || p.ModelID == hex.EncodeToString(rec.Model)) {
			rounds = append(rounds, roundOf(&rec))
		}
		return nil
	})
	sort.SliceStable(rounds, func(i, j int) bool { return rounds[i].OpenedAt < rounds[j].OpenedAt })
	out := []adminrpc.RoundInfo{}
	for i := range rounds {
		out = append(out, roundInfo(&rounds[i]))
	}
	return out, err
}

func (n *Node) rpcRoundClose(ctx context.Context, p adminrpc.RoundIDParams) (adminrpc.RoundCloseResult, error) {
	id, err := n.rounds.closeNow(ctx, p.RoundID)
	return adminrpc.RoundCloseResult{ModelID: id}, err
}

func (n *Node) rpcRoundReport(ctx context.Context, p adminrpc.RoundIDParams) (adminrpc.RoundReport, error) {
	var rec store.ReportRecord
	err := n.store.Get(store.ReportKey(p.RoundID), &rec)
	rep := reportOf(&rec)
	if errors.Is(err, store.ErrNotFound) {
		if r, gerr := n.rounds.get(p.RoundID); gerr == nil {
			if r.Coordinator != n.host.ID().String() {
				return rep, adminrpc.Errorf(adminrpc.CodeRole, "round %s is coordinated by %s: ask it for the report", p.RoundID, r.Coordinator)
			}
			return rep, adminrpc.Errorf(adminrpc.CodeNotFound, "round %s is %s: its report is written when it ends with an aggregate", p.RoundID, r.State)
		}
		return rep, adminrpc.Errorf(adminrpc.CodeNotFound, "round %q is not known", p.RoundID)
	}
	return rep, err
}
