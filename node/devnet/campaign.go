package devnet

import (
	"context"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/nodeproc"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/icp"
)

// RewardPerUpdate is what the story's campaign pays each accepted contributor of a published
// round, in ledger base units (0.001 token of 8 decimals), from the account of the coordinator
// that ran the round.
const RewardPerUpdate = "100000"

// AdoptMaxReward is the coordinators' train.adopt_max_reward, in tokens: a coordinator that
// adopts the campaign pays its reward (RewardPerUpdate, 0.001 token of the emulated ledger's 8
// decimals) in full.
const AdoptMaxReward = "0.001"

// FailoverAfter is the coordinators' train.failover_after in the devnet: a round whose
// coordinator has been silent this long is re-opened by the next live coordinator of the lineage.
const FailoverAfter = 5 * time.Second

// AdoptWithin bounds the wait, after the story killed the campaign's coordinator, for another to
// list the campaign (it re-opened the open round and adopted the campaign).
const AdoptWithin = 2 * time.Minute

// RoundDeadline is each campaign round's deadline.
const RoundDeadline = "5m"

// CampaignReport summarises the story's campaign: its strategy, how it ended, the coordinators
// that ran it, every round, and the rewards paid.
type CampaignReport struct {
	CampaignID string                  `json:"campaign_id"`
	Strategy   adminrpc.StrategyParams `json:"strategy"`
	LRDecay    float64                 `json:"lr_decay,omitempty"` // the trainers' learning rate × this per round
	State      string                  `json:"state"`
	Why        string                  `json:"why,omitempty"`
	Rounds     int                     `json:"rounds"` // how many it was to run at most
	MinUpdates int                     `json:"min_updates"`
	Secure     bool                    `json:"secure,omitempty"`
	// StartedOn is the coordinator campaign_start was called on; AdoptedBy the coordinators that
	// took the campaign over when the one running it went silent (in order), each with the peer
	// ID of the one it took over from.
	StartedOn string         `json:"started_on"`
	AdoptedBy []AdoptionLine `json:"adopted_by,omitempty"`
	History   []CampaignLine `json:"history"`
	Reward    string         `json:"reward"` // per accepted update, base units
	Rewards   RewardsReport  `json:"rewards"`
}

// AdoptionLine is one take-over of the campaign.
type AdoptionLine struct {
	Coordinator string `json:"coordinator"`
	From        string `json:"from"`         // the node it took over from ("" if not a devnet node)
	FromPeerID  string `json:"from_peer_id"` // adopted_from
}

// CampaignLine is one round of the campaign, as the coordinator that ran it tells it.
type CampaignLine struct {
	Round        int      `json:"round"` // 1-based
	RoundID      string   `json:"round_id,omitempty"`
	Coordinator  string   `json:"coordinator,omitempty"`
	State        string   `json:"state"`
	Accuracy     float64  `json:"accuracy,omitempty"`
	Contributors []string `json:"contributors,omitempty"`
	Dropouts     []string `json:"dropouts,omitempty"`
	// KeptPrevious: the aggregate scored too far below its base and was not published.
	KeptPrevious bool         `json:"kept_previous,omitempty"`
	Error        string       `json:"error,omitempty"`
	Payouts      []PayoutLine `json:"payouts,omitempty"`
}

// PayoutLine is one reward of a round.
type PayoutLine struct {
	Node   string `json:"node"`
	PeerID string `json:"peer_id"`
	Amount string `json:"amount"`
	Block  uint64 `json:"block,omitempty"`
	Done   bool   `json:"done"`
	Error  string `json:"error,omitempty"`
	// VerifiedByTrainer: the trainer's own round_report shows this reward, checked on the
	// ledger by the trainer (block, amount, payer and memo).
	VerifiedByTrainer bool `json:"verified_by_trainer,omitempty"`
}

// RewardsReport totals the rewards the campaign paid, and what each trainer's balance moved by
// during the campaign (it pays nothing then: its moves are the rewards).
type RewardsReport struct {
	Count         int               `json:"count"`
	Total         string            `json:"total"` // base units
	TotalTokens   string            `json:"total_tokens"`
	Blocks        []uint64          `json:"blocks"`
	BalanceDeltas map[string]string `json:"balance_deltas"` // trainer → base units
}

// campaignView is a coordinator's campaign_show of the story's campaign.
type campaignView = adminrpc.Campaign

// roundsOn returns n's round_list.
func roundsOn(ctx context.Context, n *nodeproc.Node) ([]adminrpc.RoundInfo, error) {
	list, err := n.Client().RoundList(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("%s: round_list: %w", n.Name, err)
	}
	return list, nil
}

// byNumber returns a campaign's rounds by their number in it (from 1, in order): of the entries
// with one number (a round and the round that re-opened it after a failover), the last.
func byNumber(history []adminrpc.CampaignRound) []adminrpc.CampaignRound {
	var out []adminrpc.CampaignRound
	for i, h := range history {
		n := h.Index
		if n == 0 {
			n = i + 1
		}
		for len(out) < n {
			out = append(out, adminrpc.CampaignRound{})
		}
		out[n-1] = h
	}
	return out
}

// historyEntry returns the entry of round id in a campaign's history.
func historyEntry(history []adminrpc.CampaignRound, id string) (adminrpc.CampaignRound, bool) {
	for _, h := range history {
		if h.RoundID == id && id != "" {
			return h, true
		}
	}
	return adminrpc.CampaignRound{}, false
}

// ended reports whether a campaign round's state is final.
func ended(state string) bool { return state == announce.RoundDone || state == announce.RoundFailed }

// follower follows the story's campaign on whichever live coordinator runs it, reads the report
// of each round as it ends, and places the story's incidents (the kill, the gate trainer's
// lives) as the rounds go.
type follower struct {
	st       *story
	id       string
	progress func(RoundLine)

	views    map[string]campaignView // coordinator name → its last view of the campaign
	adopters []AdoptionLine
	lines    map[int]*RoundLine // campaign round → its line
	ends     map[int]bool       // campaign rounds ended (with or without a line)

	kill        bool           // the story kills the first coordinator once round 2 is open on it
	killed      *nodeproc.Node // the coordinator it killed
	killedRound string         // the round it left open
	killedAt    time.Time

	gate *nodeproc.Node // the trainer whose lives place the incidents (nil: none)
	plan []gateLife
	life int // the gate trainer's current life
}

// names maps the devnet nodes' peer IDs to their names.
func (st *story) names() map[string]string {
	out := map[string]string{}
	for _, n := range append(append([]*nodeproc.Node{st.pub}, st.coords...), st.trainers...) {
		out[n.Info().PeerID] = n.Name
	}
	return out
}

// campaignOn returns coord's view of campaign id (ok false: it lists no such campaign).
func campaignOn(ctx context.Context, coord *nodeproc.Node, id string) (campaignView, bool, error) {
	list, err := coord.Client().CampaignList(ctx)
	if err != nil {
		return campaignView{}, false, fmt.Errorf("%s: campaign_list: %w", coord.Name, err)
	}
	for _, c := range list {
		if c.CampaignID == id {
			return c, true, nil
		}
	}
	return campaignView{}, false, nil
}

// leader polls every live coordinator for the campaign and returns the one running it (or, once
// it ended, the last to have run it); nil while none lists it (a failover under way).
func (f *follower) leader(ctx context.Context) (*nodeproc.Node, error) {
	var running, finished *nodeproc.Node
	names := f.st.names()
	for _, c := range f.st.coords {
		if !c.Running() {
			continue
		}
		v, ok, err := campaignOn(ctx, c, f.id)
		if err != nil {
			if !c.Running() {
				continue
			}
			return nil, err
		}
		if !ok {
			continue
		}
		if _, seen := f.views[c.Name]; !seen && v.AdoptedFrom != "" {
			f.adopters = append(f.adopters, AdoptionLine{Coordinator: c.Name, From: names[v.AdoptedFrom], FromPeerID: v.AdoptedFrom})
			f.st.say("%s adopted campaign %s from %s: it runs the rounds from now on", c.Name, f.id, names[v.AdoptedFrom])
		}
		f.views[c.Name] = v
		switch {
		case v.State == "running" && (running == nil || v.AdoptedFrom != ""):
			running = c
		case v.State != "running" && (finished == nil || v.AdoptedFrom != ""):
			finished = c
		}
	}
	if running != nil {
		return running, nil
	}
	return finished, nil
}

// poll reads the campaign once and acts on what changed; done once the campaign ended and every
// round of it was read.
func (f *follower) poll(ctx context.Context) (done bool, err error) {
	lead, err := f.leader(ctx)
	if err != nil {
		return false, err
	}
	if lead == nil { // a failover under way: the gate trainer may be due for the re-opened round
		if f.killed != nil && time.Since(f.killedAt) > AdoptWithin {
			return false, fmt.Errorf("no live coordinator took campaign %s over within %s of the kill of %s (campaign_list lists it on none)", f.id, AdoptWithin, f.killed.Name)
		}
		return false, f.moveGate(ctx)
	}
	v := f.views[lead.Name]
	rounds := byNumber(v.History)
	for i, h := range rounds {
		n := i + 1
		if f.ends[n] || !ended(h.State) {
			continue
		}
		if err := f.record(ctx, n, lead, h); err != nil {
			return false, err
		}
	}
	if err := f.maybeKill(ctx, lead, v); err != nil {
		return false, err
	}
	if err := f.moveGate(ctx); err != nil {
		return false, err
	}
	if v.State == "running" {
		return false, nil
	}
	for i := range rounds {
		if !f.ends[i+1] {
			return false, nil
		}
	}
	return true, nil
}

// record reads the report of campaign round n, ended on lead, and prints its line. A round that
// ran on another coordinator (an adopted campaign's earlier rounds) was read from it already.
func (f *follower) record(ctx context.Context, n int, lead *nodeproc.Node, h adminrpc.CampaignRound) error {
	if h.RoundID == "" { // the round could not even open
		f.ends[n] = true
		return nil
	}
	list, err := roundsOn(ctx, lead)
	if err != nil {
		return err
	}
	var info *adminrpc.RoundInfo
	for i := range list {
		if list[i].RoundID == h.RoundID {
			info = &list[i]
		}
	}
	if info == nil {
		return fmt.Errorf("campaign round %d (%s) is in %s's campaign history but not in its round_list", n, h.RoundID, lead.Name)
	}
	if info.Coordinator != lead.Info().PeerID {
		if f.lines[n] == nil && !f.ends[n] {
			return fmt.Errorf("campaign round %d (%s) ended on %s before the devnet read its report", n, h.RoundID, f.st.names()[info.Coordinator])
		}
		f.ends[n] = true
		return nil
	}
	if h.State == announce.RoundFailed && !h.Kept {
		return fmt.Errorf("campaign round %d (%s) failed on %s: %s", n, h.RoundID, lead.Name, h.Error)
	}
	line, err := f.st.roundLine(ctx, n, lead, info, h)
	if err != nil {
		return fmt.Errorf("round %d: %w", n, err)
	}
	f.lines[n], f.ends[n] = line, true
	f.progress(*line)
	return nil
}

// maybeKill kills the campaign's first coordinator once it opened round 2 and the others hold
// the version round 1 published (custody): the campaign goes on by failover.
func (f *follower) maybeKill(ctx context.Context, lead *nodeproc.Node, v campaignView) error {
	victim := f.st.coords[0]
	rounds := byNumber(v.History)
	if !f.kill || f.killed != nil || lead != victim || len(rounds) < 2 || rounds[1].State != announce.RoundOpen || f.lines[1] == nil {
		return nil
	}
	if err := f.st.waitCustody(ctx, f.lines[1].NewModel, victim); err != nil {
		return err
	}
	f.st.say("campaign round 2 (%s) is open on %s: killing it (SIGKILL); %d of %d coordinators remain, the threshold is %d; after %s of silence another re-opens the round and adopts the campaign",
		rounds[1].RoundID, victim.Name, len(f.st.coords)-1, len(f.st.coords), f.st.threshold, FailoverAfter)
	if err := victim.Kill(); err != nil {
		return fmt.Errorf("kill %s: %w", victim.Name, err)
	}
	f.killed, f.killedRound, f.killedAt = victim, rounds[1].RoundID, time.Now()
	return nil
}

// moveGate restarts the gate trainer into its next life once the event ending its current one
// happened; a life with the failpoint must have crashed by then.
func (f *follower) moveGate(ctx context.Context) error {
	if f.gate == nil || f.life >= len(f.plan)-1 {
		return nil
	}
	cur := f.plan[f.life]
	switch {
	case cur.until.reopened:
		if f.killedRound == "" {
			return nil
		}
		ok, err := f.reopenedOn(ctx, f.gate)
		if err != nil || !ok {
			return err
		}
	case !f.ends[cur.until.ended]:
		return nil
	}
	if cur.crash {
		if !crashed(ctx, f.gate, time.Minute) {
			return fmt.Errorf("%s is still running after round %d: it never crashed after sending its key shares (%s)", f.gate.Name, cur.until.ended, f.seenBy(ctx, f.gate, cur.until.ended))
		}
		f.st.say("%s crashed after sending its key shares in round %d, as its failpoint said", f.gate.Name, cur.until.ended)
	}
	return f.enterLife(ctx, f.life+1)
}

// latest is the last version the campaign published ("" before its first round ended).
func (f *follower) latest() string {
	v, best := "", 0
	for n, l := range f.lines {
		if n > best && l.NewModel != "" {
			v, best = l.NewModel, n
		}
	}
	return v
}

// seenBy says how trainer n lists campaign round k (for an error: known, state, joinable,
// submitted).
func (f *follower) seenBy(ctx context.Context, n *nodeproc.Node, k int) string {
	l := f.lines[k]
	if l == nil {
		return fmt.Sprintf("round %d has no line", k)
	}
	list, err := roundsOn(ctx, n)
	if err != nil {
		return err.Error()
	}
	for _, r := range list {
		if r.RoundID == l.RoundID {
			return fmt.Sprintf("%s lists round %s as %s, joinable %v, submitted %v", n.Name, r.RoundID, r.State, r.Joinable, r.Submitted)
		}
	}
	return fmt.Sprintf("%s does not know round %s (%d rounds known)", n.Name, l.RoundID, len(list))
}

// reopenedOn reports whether n has heard the round the killed coordinator left open re-opened by
// another coordinator (and so holds the old one failed).
func (f *follower) reopenedOn(ctx context.Context, n *nodeproc.Node) (bool, error) {
	list, err := roundsOn(ctx, n)
	if err != nil {
		return false, err
	}
	reopened, oldFailed := false, false
	for _, r := range list {
		reopened = reopened || r.Reopens == f.killedRound
		oldFailed = oldFailed || (r.RoundID == f.killedRound && r.State == announce.RoundFailed)
	}
	return reopened && oldFailed, nil
}

// enterLife restarts the gate trainer into life i of its plan.
func (f *follower) enterLife(ctx context.Context, i int) error {
	l := f.plan[i]
	if err := f.gate.EditConfig(func(c *config.Config) { c.Train.AutoPerHour = autoCap(l.cap) }); err != nil {
		return err
	}
	switch {
	case l.crash:
		f.st.say("restarting %s with the failpoint secagg-shares-sent: it joins the next round and crashes after sending its key shares", f.gate.Name)
	case i == len(f.plan)-1:
		f.st.say("restarting %s without a failpoint or a cap: it joins the campaign's next rounds by itself", f.gate.Name)
	default:
		f.st.say("restarting %s: it joins the campaign's next %d round(s)", f.gate.Name, l.cap)
	}
	// The version the next round opens on is made local first (fetched, unlocked: no payment
	// after the first): the auto-trainer tries a round once, and its first try comes right at
	// start, before the node is back in the network.
	if v := f.latest(); v != "" && f.gate.Running() {
		if err := fetchOn(ctx, f.gate, v); err != nil {
			return err
		}
		if _, err := f.gate.Client().ModelUnlock(ctx, adminrpc.UnlockParams{ModelID: v}); err != nil {
			return fmt.Errorf("%s: unlock %s: %w", f.gate.Name, v, err)
		}
	}
	if err := f.st.restart(ctx, f.gate, l.env()...); err != nil {
		return err
	}
	f.life = i
	return nil
}

// campaignReport builds the campaign's summary (summarise) from what the follower saw, with the
// trainers' balance moves (before: their balances when it started).
func (f *follower) campaignReport(ctx context.Context, lead *nodeproc.Node, p adminrpc.CampaignStartParams, before map[string]*big.Int) (*CampaignReport, error) {
	after, err := f.st.balances(ctx)
	if err != nil {
		return nil, err
	}
	decimals := uint8(8)
	if bal, err := f.st.trainers[0].Client().LedgerBalance(ctx); err == nil {
		decimals = bal.Decimals
	}
	rep := summarise(f.id, p, f.st.coords[0].Name, lead.Name, f.views, f.lines, f.adopters, f.st.names(), decimals)
	f.st.verifyRewards(ctx, rep)
	for name, b := range before {
		if after[name] == nil {
			return nil, fmt.Errorf("%s has no balance after the campaign", name)
		}
		rep.Rewards.BalanceDeltas[name] = new(big.Int).Sub(after[name], b).String()
	}
	return rep, nil
}

// summarise makes the campaign's summary: each round as the last coordinator to run the campaign
// (lead) lists it, with the coordinator, contributors and dropouts of its line and the payouts as
// the coordinator that ran it recorded them (an adopter's history of the earlier rounds has
// none: they were the silent coordinator's); the rewards paid; names maps peer IDs to node
// names, decimals are the ledger's.
func summarise(id string, p adminrpc.CampaignStartParams, startedOn, lead string, views map[string]campaignView, lines map[int]*RoundLine,
	adopters []AdoptionLine, names map[string]string, decimals uint8) *CampaignReport {
	last := views[lead]
	rep := &CampaignReport{CampaignID: id, Strategy: p.StrategyParams, LRDecay: p.LRDecay, State: last.State, Why: last.Why, Rounds: p.Rounds, MinUpdates: p.MinUpdates, Secure: p.Secure,
		StartedOn: startedOn, AdoptedBy: adopters, Reward: p.Reward, History: []CampaignLine{}, Rewards: RewardsReport{Blocks: []uint64{}, BalanceDeltas: map[string]string{}}}
	total := new(big.Int)
	for i, h := range byNumber(last.History) {
		n := i + 1
		cl := CampaignLine{Round: n, RoundID: h.RoundID, State: h.State, Accuracy: h.Accuracy, KeptPrevious: h.Kept, Error: h.Error}
		if l := lines[n]; l != nil {
			cl.Coordinator, cl.Contributors, cl.Dropouts, cl.Accuracy = l.Coordinator, l.Contributors, l.Dropouts, l.Accuracy
			if ran, ok := historyEntry(views[l.Coordinator].History, h.RoundID); ok {
				h = ran
			}
		}
		for _, po := range h.Payouts {
			cl.Payouts = append(cl.Payouts, PayoutLine{Node: names[po.PeerID], PeerID: po.PeerID, Amount: po.Amount, Block: po.Block, Done: po.Done, Error: po.Error})
			if a, ok := new(big.Int).SetString(po.Amount, 10); ok && po.Done {
				total.Add(total, a)
				rep.Rewards.Count++
				rep.Rewards.Blocks = append(rep.Rewards.Blocks, po.Block)
			}
		}
		rep.History = append(rep.History, cl)
	}
	rep.Rewards.Total, rep.Rewards.TotalTokens = total.String(), icp.FormatTokens(total, decimals)
	return rep
}

// balances returns each trainer's ledger balance, in base units.
func (st *story) balances(ctx context.Context) (map[string]*big.Int, error) {
	out := map[string]*big.Int{}
	for _, tr := range st.trainers {
		bal, err := tr.Client().LedgerBalance(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: ledger_balance: %w", tr.Name, err)
		}
		b, ok := new(big.Int).SetString(bal.Balance, 10)
		if !ok {
			return nil, fmt.Errorf("%s: balance %q is not a number", tr.Name, bal.Balance)
		}
		out[tr.Name] = b
	}
	return out, nil
}

// autoCap is train.auto_max_per_hour for a gate life's cap (0: the default).
func autoCap(n int) int {
	if n == 0 {
		return config.Default().Train.AutoPerHour
	}
	return n
}

// strategyName names a strategy with its parameters and the trainers' settings it sets
// ("fedavgm (server lr 1.2, momentum 0.8, epochs 5, lr 0.5 × 0.85 per round)").
func strategyName(p adminrpc.StrategyParams, decay float64) string {
	name := p.Strategy
	if name == "" {
		name = "fedavg"
	}
	var params []string
	for _, kv := range []struct {
		k string
		v float64
	}{{"server lr", p.ServerLR}, {"momentum", p.Momentum}, {"beta2", p.Beta2}, {"tau", p.Tau}, {"prox mu", p.ProxMu},
		{"epochs", float64(p.Epochs)}, {"batch", float64(p.BatchSize)}} {
		if kv.v != 0 {
			params = append(params, fmt.Sprintf("%s %g", kv.k, kv.v))
		}
	}
	switch {
	case p.LearningRate != 0 && decay != 0 && decay != 1:
		params = append(params, fmt.Sprintf("lr %g × %g per round", p.LearningRate, decay))
	case p.LearningRate != 0:
		params = append(params, fmt.Sprintf("lr %g", p.LearningRate))
	}
	if len(params) == 0 {
		return name
	}
	return name + " (" + strings.Join(params, ", ") + ")"
}

// printCampaign prints the campaign's summary: how it ran and ended, each round, the rewards.
func printCampaign(w io.Writer, c *CampaignReport) {
	fmt.Fprintf(w, "\ncampaign %s: %s, %d rounds of %d trainers (secure %v), started on %s; %s: %s\n",
		c.CampaignID, strategyName(c.Strategy, c.LRDecay), c.Rounds, c.MinUpdates, c.Secure, c.StartedOn, c.State, c.Why)
	for _, a := range c.AdoptedBy {
		fmt.Fprintf(w, "  adopted by %s from %s (%s) when it went silent\n", a.Coordinator, a.From, a.FromPeerID)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ROUND\tCOORDINATOR\tSTATE\tACCURACY\tCONTRIBUTORS\tDROPOUTS\tKEPT PREVIOUS\tREWARDS")
	for _, l := range c.History {
		paid := 0
		for _, p := range l.Payouts {
			if p.Done {
				paid++
			}
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%.3f\t%s\t%s\t%v\t%d\n", l.Round, dash(l.Coordinator), l.State, l.Accuracy, dash(strings.Join(l.Contributors, ",")),
			dash(strings.Join(l.Dropouts, ",")), l.KeptPrevious, paid)
	}
	tw.Flush()
	fmt.Fprintf(w, "  rewards: %d paid, %s base units (%s tokens) in blocks %v; %s base units per accepted update\n",
		c.Rewards.Count, c.Rewards.Total, c.Rewards.TotalTokens, c.Rewards.Blocks, c.Reward)
	names := make([]string, 0, len(c.Rewards.BalanceDeltas))
	for n := range c.Rewards.BalanceDeltas {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, n+" "+c.Rewards.BalanceDeltas[n])
	}
	fmt.Fprintf(w, "  trainers' balance changes during the campaign (base units): %s\n", strings.Join(parts, ", "))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// verifyRewards asks each paid trainer for its own report on the round it was paid for and marks
// the payouts its report shows verified on the ledger (not for a round whose coordinator the
// story killed: the trainer learns of a reward from the round's coordinator).
func (st *story) verifyRewards(ctx context.Context, rep *CampaignReport) {
	byName := map[string]*nodeproc.Node{}
	for _, n := range append(append([]*nodeproc.Node(nil), st.trainers...), st.coords...) {
		byName[n.Name] = n
	}
	for i := range rep.History {
		h := &rep.History[i]
		if c := byName[h.Coordinator]; c == nil || !c.Running() {
			continue
		}
		for j := range h.Payouts {
			po := &h.Payouts[j]
			tr := byName[po.Node]
			if !po.Done || tr == nil || !tr.Running() {
				continue
			}
			r, err := tr.Client().RoundReport(ctx, h.RoundID)
			if err != nil {
				st.say("%s: round_report of round %d: %v", tr.Name, h.Round, err)
				continue
			}
			po.VerifiedByTrainer = r.Reward != nil && r.Reward.Verified && r.Reward.Block == po.Block && r.Reward.Amount == po.Amount
		}
	}
}
