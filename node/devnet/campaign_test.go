package devnet

import (
	"fmt"
	"strings"
	"testing"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// TestPrintCampaign: the printed campaign summary names the strategy with its parameters, how
// the campaign ended, who adopted it, each round's coordinator, contributors, dropouts,
// kept-previous flag and rewards paid, the rewards' total and blocks, and every trainer's
// balance change.
func TestPrintCampaign(t *testing.T) {
	var b strings.Builder
	printCampaign(&b, &CampaignReport{
		CampaignID: "c0ffee", Strategy: adminrpc.StrategyParams{Strategy: fl.StrategyFedAvgM, ServerLR: 1.2, Momentum: 0.8}, State: "done", Why: "ran its 3 rounds",
		Rounds: 3, MinUpdates: 4, Secure: true, StartedOn: "coordinator1", Reward: RewardPerUpdate,
		AdoptedBy: []AdoptionLine{{Coordinator: "coordinator2", From: "coordinator1", FromPeerID: "12D3KooWpeer"}},
		History: []CampaignLine{
			{Round: 1, Coordinator: "coordinator1", State: "done", Accuracy: 0.883, Contributors: []string{"trainer1", "trainer2"},
				Payouts: []PayoutLine{{Node: "trainer1", Amount: "100000", Block: 10, Done: true}, {Node: "trainer2", Amount: "100000", Done: false, Error: "ledger down"}}},
			{Round: 2, Coordinator: "coordinator2", State: "failed", Accuracy: 0.5, Contributors: []string{"trainer1"}, Dropouts: []string{"trainer2"}, KeptPrevious: true},
		},
		Rewards: RewardsReport{Count: 1, Total: "100000", TotalTokens: "0.001", Blocks: []uint64{10}, BalanceDeltas: map[string]string{"trainer2": "0", "trainer1": "100000"}},
	})
	out := b.String()
	for _, want := range []string{
		"campaign c0ffee: fedavgm (server lr 1.2, momentum 0.8), 3 rounds of 4 trainers (secure true), started on coordinator1; done: ran its 3 rounds",
		"adopted by coordinator2 from coordinator1 (12D3KooWpeer)",
		"1      coordinator1  done    0.883     trainer1,trainer2  -         false          1",
		"2      coordinator2  failed  0.500     trainer1           trainer2  true           0",
		"rewards: 1 paid, 100000 base units (0.001 tokens) in blocks [10]",
		"(base units): trainer1 100000, trainer2 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("printCampaign =\n%s\nwant it to contain %q", out, want)
		}
	}
}

// TestStrategyName: a strategy is named with the parameters it sets; none is fedavg.
func TestStrategyName(t *testing.T) {
	for _, c := range []struct {
		p     adminrpc.StrategyParams
		decay float64
		want  string
	}{
		{adminrpc.StrategyParams{}, 0, "fedavg"},
		{adminrpc.StrategyParams{Strategy: fl.StrategyFedAvgM, ServerLR: 1.2, Epochs: 5, BatchSize: 32, LearningRate: 0.5}, 0.85, "fedavgm (server lr 1.2, epochs 5, batch 32, lr 0.5 × 0.85 per round)"},
		{adminrpc.StrategyParams{LearningRate: 0.5}, 1, "fedavg (lr 0.5)"},
		{adminrpc.StrategyParams{Strategy: fl.StrategyFedAvgM, ServerLR: 1.2, Momentum: 0.8}, 0, "fedavgm (server lr 1.2, momentum 0.8)"},
		{adminrpc.StrategyParams{Strategy: "fedadam", ServerLR: 0.1, Beta2: 0.99, Tau: 1e-3}, 0, "fedadam (server lr 0.1, beta2 0.99, tau 0.001)"},
	} {
		if got := strategyName(c.p, c.decay); got != c.want {
			t.Errorf("strategyName(%+v) = %q, want %q", c.p, got, c.want)
		}
	}
}

// TestByNumber: a campaign's history is read by round number: an adopted campaign lists the
// round the silent coordinator left open and the round that re-opened it under one number (the
// re-opening wins); entries written before numbers existed count by position.
func TestByNumber(t *testing.T) {
	got := byNumber([]adminrpc.CampaignRound{
		{RoundID: "r1", Index: 1, State: "done"},
		{RoundID: "r2", Index: 2, State: "failed"},
		{RoundID: "r2b", Index: 2, State: "done"},
		{RoundID: "r3", Index: 3, State: "open"},
	})
	var ids []string
	for _, h := range got {
		ids = append(ids, h.RoundID)
	}
	if strings.Join(ids, ",") != "r1,r2b,r3" {
		t.Errorf("byNumber(r1, r2, r2b re-opening r2, r3) = %v, want r1,r2b,r3", ids)
	}
	if got := byNumber([]adminrpc.CampaignRound{{RoundID: "a"}, {RoundID: "b"}}); len(got) != 2 || got[1].RoundID != "b" {
		t.Errorf("byNumber of unnumbered entries = %+v, want them by position", got)
	}
	if h, ok := historyEntry([]adminrpc.CampaignRound{{RoundID: "x"}, {RoundID: "y", Accuracy: 0.5}}, "y"); !ok || h.Accuracy != 0.5 {
		t.Errorf("historyEntry(y) = %+v, %v; want y's entry", h, ok)
	}
	if _, ok := historyEntry([]adminrpc.CampaignRound{{}}, ""); ok {
		t.Error("historyEntry(\"\") found an entry, want none (an entry without a round ID is a round that never opened)")
	}
}

// TestSummarise: the campaign summary of an adopted campaign takes each round from the adopter's
// history by number (the re-opened round 2, not the one the silent coordinator left open), the
// line's coordinator, contributors and dropouts, and the payouts from the history of the
// coordinator that ran the round (the adopter's history of round 1 has none); rewards count only
// the payouts done.
func TestSummarise(t *testing.T) {
	paid := func(peer string, block uint64) adminrpc.CampaignPayout {
		return adminrpc.CampaignPayout{PeerID: peer, Amount: "100000", Block: block, Done: true}
	}
	views := map[string]campaignView{
		"coordinator1": {CampaignID: "c", State: "running", History: []adminrpc.CampaignRound{
			{RoundID: "r1", Index: 1, State: "done", Payouts: []adminrpc.CampaignPayout{paid("p1", 10), paid("p2", 11)}},
			{RoundID: "r2", Index: 2, State: "open"},
		}},
		"coordinator2": {CampaignID: "c", State: "done", Why: "ran its 3 rounds", AdoptedFrom: "pc1", History: []adminrpc.CampaignRound{
			{RoundID: "r1", Index: 1, State: "done"},
			{RoundID: "r2", Index: 2, State: "failed"},
			{RoundID: "r2b", Index: 2, State: "done", Payouts: []adminrpc.CampaignPayout{paid("p1", 12), {PeerID: "p2", Amount: "100000", Error: "ledger down"}}},
			{RoundID: "r3", Index: 3, State: "done", Payouts: []adminrpc.CampaignPayout{paid("p1", 13)}},
		}},
	}
	lines := map[int]*RoundLine{
		1: {Round: 1, RoundID: "r1", Coordinator: "coordinator1", Accuracy: 0.9, Contributors: []string{"trainer1", "trainer2"}},
		2: {Round: 2, RoundID: "r2b", Coordinator: "coordinator2", Accuracy: 0.92, Contributors: []string{"trainer1", "trainer2"}},
		3: {Round: 3, RoundID: "r3", Coordinator: "coordinator2", Accuracy: 0.93, Contributors: []string{"trainer1"}, Dropouts: []string{"trainer2"}},
	}
	adopters := []AdoptionLine{{Coordinator: "coordinator2", From: "coordinator1", FromPeerID: "pc1"}}
	p := adminrpc.CampaignStartParams{Rounds: 3, MinUpdates: 2, Secure: true, Reward: "100000", StrategyParams: adminrpc.StrategyParams{Strategy: fl.StrategyFedAvgM}}
	rep := summarise("c", p, "coordinator1", "coordinator2", views, lines, adopters, map[string]string{"p1": "trainer1", "p2": "trainer2"}, 8)
	if rep.State != "done" || rep.Why != "ran its 3 rounds" || rep.StartedOn != "coordinator1" || len(rep.AdoptedBy) != 1 || rep.Strategy.Strategy != fl.StrategyFedAvgM {
		t.Errorf("summary = %+v, want done on coordinator2 after its adoption from coordinator1", rep)
	}
	var got []string
	for _, h := range rep.History {
		got = append(got, h.RoundID+"@"+h.Coordinator+"/"+strings.Join(h.Dropouts, ",")+"/"+strings.Repeat("$", len(h.Payouts)))
	}
	if want := "r1@coordinator1//$$ r2b@coordinator2//$$ r3@coordinator2/trainer2/$"; strings.Join(got, " ") != want {
		t.Errorf("summary rounds = %v, want %s", got, want)
	}
	if r := rep.Rewards; r.Count != 4 || r.Total != "400000" || r.TotalTokens != "0.004" || fmt.Sprint(r.Blocks) != "[10 11 12 13]" {
		t.Errorf("rewards = %+v, want the 4 payouts done: 400000 base units (0.004 tokens) in blocks 10–13", r)
	}
	if rep.History[1].Payouts[1].Node != "trainer2" || rep.History[1].Payouts[1].Done {
		t.Errorf("round 2's second payout = %+v, want trainer2's, not done", rep.History[1].Payouts[1])
	}
}
