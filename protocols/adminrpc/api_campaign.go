package adminrpc

import "context"

// Campaigns (a coordinator's): campaign_start, campaign_list, campaign_show, campaign_stop.

// CampaignStartParams are the params of campaign_start: the rounds' template (as round_open's;
// model_id is the version the campaign starts from, deadline each round's, a duration), how many
// rounds, and when to stop early.
type CampaignStartParams struct {
	ModelID        string  `json:"model_id"`
	Rounds         int     `json:"rounds"`
	MinUpdates     int     `json:"min_updates"`
	Deadline       string  `json:"deadline,omitempty"` // each round's (default "10m")
	Rule           string  `json:"rule,omitempty"`
	ClipNorm       float64 `json:"clip_norm,omitempty"`
	ClipMode       string  `json:"clip_mode,omitempty"`
	MaxSamples     uint64  `json:"max_samples,omitempty"`
	Secure         bool    `json:"secure,omitempty"`
	Clip           float64 `json:"clip,omitempty"`
	TargetAccuracy float64 `json:"target_accuracy,omitempty"` // stop once a version scores this on eval_data
	Patience       int     `json:"patience,omitempty"`        // stop after this many rounds without a better version
	// Reward is paid to each accepted contributor of each published round from this
	// coordinator's account, in base units ("" : none).
	Reward string `json:"reward,omitempty"`
	// The rounds' strategy (as round_open's).
	StrategyParams
	// Config is every round's free-form configuration (as round_open's config).
	Config map[string]any `json:"config,omitempty"`
	// LRDecay multiplies learning_rate once per round: the campaign's round n (from 1) trains
	// with learning_rate·lr_decay^(n−1). In (0, 1]; 0: none; needs learning_rate.
	LRDecay float64 `json:"lr_decay,omitempty"`
}

// CampaignIDParams name a campaign.
type CampaignIDParams struct {
	CampaignID string `json:"campaign_id"`
}

// Campaign is a campaign's state: running, done, stopped or failed (why says why it ended), the
// version the next round opens on, the best accuracy so far, and its rounds.
type Campaign struct {
	CampaignID     string          `json:"campaign_id"`
	State          string          `json:"state"`
	Why            string          `json:"why,omitempty"`
	ModelID        string          `json:"model_id"` // the version it started from
	Current        string          `json:"current"`
	Rounds         int             `json:"rounds"` // how many it runs at most
	Best           float64         `json:"best,omitempty"`
	TargetAccuracy float64         `json:"target_accuracy,omitempty"`
	Patience       int             `json:"patience,omitempty"`
	Secure         bool            `json:"secure,omitempty"`
	Reward         string          `json:"reward,omitempty"`
	CreatedAt      string          `json:"created_at"`
	History        []CampaignRound `json:"history"`
	// AdoptedFrom (an addition) is the coordinator this node took the campaign over from when
	// that one went silent (state handed_over on that one once it is back); Note says what
	// changed then (a reward this node does not pay in full).
	AdoptedFrom string `json:"adopted_from,omitempty"`
	Note        string `json:"note,omitempty"`
	// Config (an addition) is every round's free-form configuration.
	Config map[string]any `json:"config,omitempty"`
}

// CampaignRound is one round of a campaign. Kept: its aggregate scored too far below its base
// (train.eval_tolerance), so the previous version stays; error says so with both scores.
type CampaignRound struct {
	RoundID      string  `json:"round_id,omitempty"`
	BaseModel    string  `json:"base_model"`
	NewModel     string  `json:"new_model,omitempty"`
	State        string  `json:"state"`
	Accuracy     float64 `json:"accuracy,omitempty"`
	BaseAccuracy float64 `json:"base_accuracy,omitempty"`
	Contributors int     `json:"contributors,omitempty"`
	Kept         bool    `json:"kept,omitempty"`
	Error        string  `json:"error,omitempty"`
	// Payouts are the rewards paid for the round: to whom, how much, in which block (or why not).
	Payouts []CampaignPayout `json:"payouts,omitempty"`
	// Index (an addition) is the round's number in the campaign, from 1 (a re-opened round keeps
	// the number of the round it re-opens); Coordinator the peer ID of the coordinator that ran
	// it when that is not this node.
	Index       int    `json:"index,omitempty"`
	Coordinator string `json:"coordinator,omitempty"`
}

// CampaignPayout is one contributor's reward for a round.
type CampaignPayout struct {
	PeerID string `json:"peer_id"`
	To     string `json:"to,omitempty"` // principal
	Amount string `json:"amount"`       // base units
	Block  uint64 `json:"block,omitempty"`
	Done   bool   `json:"done"`
	Error  string `json:"error,omitempty"`
}

// CampaignStart calls campaign_start.
func (c *Client) CampaignStart(ctx context.Context, p CampaignStartParams) (Campaign, error) {
	var r Campaign
	return r, c.Call(ctx, "campaign_start", p, &r)
}

// CampaignList calls campaign_list.
func (c *Client) CampaignList(ctx context.Context) ([]Campaign, error) {
	var r []Campaign
	return r, c.Call(ctx, "campaign_list", struct{}{}, &r)
}

// CampaignShow calls campaign_show.
func (c *Client) CampaignShow(ctx context.Context, id string) (Campaign, error) {
	var r Campaign
	return r, c.Call(ctx, "campaign_show", CampaignIDParams{CampaignID: id}, &r)
}

// CampaignStop calls campaign_stop.
func (c *Client) CampaignStop(ctx context.Context, id string) (Campaign, error) {
	var r Campaign
	return r, c.Call(ctx, "campaign_stop", CampaignIDParams{CampaignID: id}, &r)
}
