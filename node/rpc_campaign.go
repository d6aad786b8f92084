package node

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/califusion/califusion/node/campaign"
	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/apierr"
)

func (n *Node) registerCampaignRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "campaign_start", n.rpcCampaignStart)
	adminrpc.Handle(s, "campaign_list", func(context.Context, struct{}) ([]adminrpc.Campaign, error) {
		c, err := n.campaignService()
		if err != nil {
			return nil, err
		}
		recs, err := c.List()
		out := make([]adminrpc.Campaign, 0, len(recs))
		for _, r := range recs {
			out = append(out, campaignInfo(r))
		}
		return out, err
	})
	adminrpc.Handle(s, "campaign_show", func(_ context.Context, p adminrpc.CampaignIDParams) (adminrpc.Campaign, error) {
		return n.campaignCall(func(c *campaign.Service) (*campaign.Record, error) { return c.Get(p.CampaignID) })
	})
	adminrpc.Handle(s, "campaign_stop", func(_ context.Context, p adminrpc.CampaignIDParams) (adminrpc.Campaign, error) {
		return n.campaignCall(func(c *campaign.Service) (*campaign.Record, error) { return c.Stop(p.CampaignID) })
	})
}

func (n *Node) campaignService() (*campaign.Service, error) {
	if n.campaigns == nil {
		return nil, apierr.Errorf(apierr.Role, "this node is not a coordinator: add \"coordinator\" to node.roles to run campaigns")
	}
	return n.campaigns, nil
}

func (n *Node) campaignCall(fn func(*campaign.Service) (*campaign.Record, error)) (adminrpc.Campaign, error) {
	c, err := n.campaignService()
	if err != nil {
		return adminrpc.Campaign{}, err
	}
	r, err := fn(c)
	if err != nil {
		return adminrpc.Campaign{}, err
	}
	return campaignInfo(r), nil
}

func (n *Node) rpcCampaignStart(ctx context.Context, p adminrpc.CampaignStartParams) (adminrpc.Campaign, error) {
	c, err := n.campaignService()
	if err != nil {
		return adminrpc.Campaign{}, err
	}
	model, err := n.modelID(p.ModelID)
	if err != nil {
		return adminrpc.Campaign{}, err
	}
	r, err := c.Begin(ctx, campaign.Params{
		Round: rounds.OpenParams{ModelID: hex.EncodeToString(model[:]), MinUpdates: p.MinUpdates, Deadline: p.Deadline, Rule: p.Rule,
			ClipNorm: p.ClipNorm, ClipMode: p.ClipMode, MaxSamples: p.MaxSamples, Secure: p.Secure, Clip: p.Clip,
			Strategy: p.Strategy, ServerLR: p.ServerLR, Momentum: p.Momentum, Beta2: p.Beta2, Tau: p.Tau, ProxMu: p.ProxMu,
			Epochs: p.Epochs, BatchSize: p.BatchSize, LearningRate: p.LearningRate, Config: p.Config},
		Rounds: p.Rounds, TargetAccuracy: p.TargetAccuracy, Patience: p.Patience, Reward: p.Reward, LRDecay: p.LRDecay,
	})
	if err != nil {
		return adminrpc.Campaign{}, err
	}
	return campaignInfo(r), nil
}

func campaignInfo(r *campaign.Record) adminrpc.Campaign {
	out := adminrpc.Campaign{
		CampaignID: r.ID, State: r.State, Why: r.Why, ModelID: r.Params.ModelID, Current: r.Current, Rounds: r.Params.Rounds,
		Best: r.Best, TargetAccuracy: r.Params.TargetAccuracy, Patience: r.Params.Patience, Secure: r.Params.Secure, Reward: r.Params.Reward,
		CreatedAt: time.UnixMilli(r.CreatedAt).UTC().Format(time.RFC3339), History: []adminrpc.CampaignRound{},
		AdoptedFrom: r.AdoptedFrom, Note: r.Note,
		Config: r.Params.Config,
	}
	for i, e := range r.Rounds {
		cr := adminrpc.CampaignRound{RoundID: e.RoundID, BaseModel: e.BaseModel, NewModel: e.NewModel, State: e.State,
			Accuracy: e.Accuracy, BaseAccuracy: e.BaseAccuracy, Contributors: e.Contributors, Kept: e.Kept, Error: e.Error,
			Index: r.Number(i), Coordinator: e.Coordinator}
		for _, p := range e.Payouts {
			cr.Payouts = append(cr.Payouts, adminrpc.CampaignPayout{PeerID: p.Trainer, To: p.To, Amount: p.Amount, Block: p.Block, Done: p.Done, Error: p.Error})
		}
		out.History = append(out.History, cr)
	}
	return out
}
