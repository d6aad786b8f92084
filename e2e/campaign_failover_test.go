package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// TestCampaignFailover: a 3-round campaign on coordinator 1 with auto-training trainers. The
// coordinator dies (failpoint: exit 137, as SIGKILL) right after it opened round 2. Coordinator 2
// re-opens round 2 and adopts the campaign under the same ID: the trainers join the re-opened
// round by themselves, and coordinator 2 runs round 3 and ends the campaign. It pays the rewards
// of its rounds at most its own train.adopt_max_reward, not the 1000 base units coordinator 1
// chose. Coordinator 1, restarted, hands the campaign over and opens nothing more.
func TestCampaignFailover(t *testing.T) {
	fn := newFailoverNet(t, 2, func(n *harness.Node, cfg *config.Config) {
		cfg.Train.Auto = true
		cfg.Train.AdoptMaxReward = "0.000005" // 500 base units
	}, "CALIFUSION_CRASH_AT=campaign-round-2-opened")
	c1, c2 := fn.coords[0], fn.coords[1]
	camp, err := c1.Client().CampaignStart(t.Context(), adminrpc.CampaignStartParams{ModelID: fn.model, Rounds: 3, MinUpdates: 2, Deadline: "10m",
		Rule: fl.RuleFedAvg, ClipNorm: 50, Reward: "1000"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, func() error {
		if c1.Running() {
			return errf("coordinator 1 still runs: campaign round 2 not opened yet")
		}
		return nil
	})
	var got adminrpc.Campaign
	waitFor(t, 3*time.Minute, func() error {
		if got, err = c2.Client().CampaignShow(t.Context(), camp.CampaignID); err != nil {
			return err
		}
		if got.State != "done" {
			return errf("campaign on coordinator 2: %s (%s), %d rounds", got.State, got.Why, len(got.History))
		}
		return nil
	})
	if got.AdoptedFrom != fn.ids[0] || !strings.Contains(got.Why, "ran its 3 rounds") || !strings.Contains(got.Note, "pays") {
		t.Fatalf("adopted campaign = %+v; want it taken over from coordinator 1, its 3 rounds run, and a note on the reward", got)
	}
	var ran []int
	for _, r := range got.History {
		if r.Coordinator == "" { // run by coordinator 2
			ran = append(ran, r.Index)
			if r.State != "done" || r.Contributors != 2 {
				t.Errorf("round %d on coordinator 2 = %+v, want done with both trainers", r.Index, r)
			}
			for _, p := range r.Payouts {
				if !p.Done || p.Amount != "500" {
					t.Errorf("round %d's reward to %s = %+v, want 500 base units paid (train.adopt_max_reward)", r.Index, p.PeerID, p)
				}
			}
			if len(r.Payouts) != 2 {
				t.Errorf("round %d paid %d rewards, want 2", r.Index, len(r.Payouts))
			}
		}
	}
	if len(ran) != 2 || ran[0] != 2 || ran[1] != 3 {
		t.Fatalf("coordinator 2 ran campaign rounds %v, want [2 3]: %+v", ran, got.History)
	}
	for _, tr := range fn.trs {
		if !strings.Contains(tr.Logs(), "auto-train: update submitted") {
			t.Errorf("%s never submitted by itself", tr.Name)
		}
	}

	// Coordinator 1 comes back: it hands the campaign over and opens no more of its rounds.
	c1.Env = nil
	fn.c.start(c1, "--bootstrap", fn.pub.P2PAddr())
	waitFor(t, 2*time.Minute, func() error {
		back, err := c1.Client().CampaignShow(t.Context(), camp.CampaignID)
		if err != nil {
			return err
		}
		if back.State != "handed_over" {
			return errf("campaign on the restarted coordinator 1: %s (%s)", back.State, back.Why)
		}
		return nil
	})
	list, err := fn.trs[0].Client().RoundList(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list {
		if r.Coordinator == fn.ids[0] && r.State == "open" {
			t.Errorf("coordinator 1 has round %s open after handing its campaign over", r.RoundID)
		}
	}
}
