package e2e

import (
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// TestCampaignWithAutoTrainers: the coordinator runs a 5-round campaign and the three trainers
// (train.auto) take part by themselves: nobody runs train_run or update_submit. Each round opens
// on the version the previous one published. One trainer goes offline after the first round and
// comes back two rounds later: it trains for a round again without being told to. The final
// version, exported by the publisher, beats the initial model on digits no trainer saw.
func TestCampaignWithAutoTrainers(t *testing.T) {
	rn := newRoundNet(t, 3, false, func(i int, cfg *config.Config) {
		cfg.Train.Auto = true
	})
	ctx := t.Context()
	camp, err := rn.coord.Client().CampaignStart(ctx, adminrpc.CampaignStartParams{ModelID: rn.model, Rounds: 5, MinUpdates: 2, Deadline: "5m", Rule: fl.RuleFedAvg, ClipNorm: 50})
	if err != nil {
		t.Fatal(err)
	}
	rounds := func() adminrpc.Campaign {
		c, err := rn.coord.Client().CampaignShow(ctx, camp.CampaignID)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	doneRounds := func(c adminrpc.Campaign) int {
		n := 0
		for _, r := range c.History {
			if r.State == "done" {
				n++
			}
		}
		return n
	}
	waitFor(t, 3*time.Minute, func() error {
		if c := rounds(); doneRounds(c) < 1 {
			return errf("campaign: %+v", c)
		}
		return nil
	})
	away := rn.trainers[2]
	if err := away.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, func() error {
		if c := rounds(); doneRounds(c) < 3 {
			return errf("campaign: %d rounds done", doneRounds(c))
		}
		return nil
	})
	back := len(rounds().History) // rounds opened before it comes back
	rn.c.start(away, "--bootstrap", rn.coord.P2PAddr())
	var final adminrpc.Campaign
	waitFor(t, 5*time.Minute, func() error {
		if final = rounds(); final.State == "running" {
			return errf("campaign still running: %d rounds", len(final.History))
		}
		return nil
	})
	if final.State != "done" || len(final.History) != 5 {
		t.Fatalf("campaign = %+v, want done after its 5 rounds", final)
	}
	for i, r := range final.History {
		if r.State != "done" || r.NewModel == "" || r.Contributors < 2 {
			t.Errorf("campaign round %d = %+v, want done with at least 2 contributors", i+1, r)
		}
		if i > 0 && r.BaseModel != final.History[i-1].NewModel {
			t.Errorf("campaign round %d opened on %s, want the previous round's version %s", i+1, r.BaseModel, final.History[i-1].NewModel)
		}
	}
	// The trainer that came back trained for a round opened after it did, by itself.
	rejoined := false
	for _, r := range final.History[back-1:] {
		if strings.Contains(away.Logs(), `msg="auto-train: update trained" subsys=autotrain round=`+r.RoundID) {
			rejoined = true
		}
	}
	if !rejoined {
		t.Errorf("%s never trained again after it came back:\n%s", away.Name, away.Logs())
	}
	// The last version beats the first on held-out digits.
	all, _ := devnet.LoadDigits()
	_, test := all.Split(1, 0.2)
	exportPath := filepath.Join(t.TempDir(), "final.safetensors")
	if _, err := rn.pub.Client().ModelUnlock(ctx, adminrpc.UnlockParams{ModelID: final.Current}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, func() error {
		_, err := rn.pub.Client().ModelExport(ctx, final.Current, exportPath)
		return err
	})
	raw, err := os.ReadFile(exportPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fl.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if acc, base := fl.Accuracy(got, test), fl.Accuracy(rn.base, test); acc < base+0.5 || acc < 0.85 {
		t.Errorf("the campaign's last version scores %.3f on held-out digits, the initial model %.3f; want at least 0.85", acc, base)
	}
}

// TestCampaignRewardsPaidOnce: a campaign with a reward pays each accepted contributor once, on
// the ledger, to the account it paid for the lineage from — even when the coordinator is killed
// (failpoint reward-sent: the first reward is on the ledger, its record not yet done) during the
// payouts and restarted: it resumes them and sends the unfinished one again as the same
// transaction, which the ledger does not execute twice.
func TestCampaignRewardsPaidOnce(t *testing.T) {
	rn := newRoundNet(t, 2, false, func(i int, cfg *config.Config) { cfg.Train.Auto = true })
	ctx := t.Context()
	rn.replica.Mint(principal.MustDecode(rn.coord.Info().ICPPrincipal), 10_000_000)
	balance := func(n *harness.Node) *big.Int {
		b, err := n.Client().LedgerBalance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := new(big.Int).SetString(b.Balance, 10)
		return v
	}
	before := []*big.Int{balance(rn.trainers[0]), balance(rn.trainers[1])}
	// The coordinator dies right after sending the first reward.
	if err := rn.coord.Stop(); err != nil {
		t.Fatal(err)
	}
	rn.coord.Env = []string{"CALIFUSION_CRASH_AT=reward-sent"}
	rn.c.start(rn.coord)
	camp, err := rn.coord.Client().CampaignStart(ctx, adminrpc.CampaignStartParams{ModelID: rn.model, Rounds: 1, MinUpdates: 2, Deadline: "5m", Rule: fl.RuleFedAvg, ClipNorm: 50, Reward: "1000"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, func() error {
		if rn.coord.Running() {
			return errf("the coordinator has not reached the failpoint yet")
		}
		return nil
	})
	rn.coord.Env = nil
	rn.c.start(rn.coord)
	var final adminrpc.Campaign
	waitFor(t, 2*time.Minute, func() error {
		c, err := rn.coord.Client().CampaignShow(ctx, camp.CampaignID)
		if err != nil {
			return err
		}
		final = c
		if c.State != "done" || len(c.History) != 1 || len(c.History[0].Payouts) != 2 {
			return errf("campaign: %+v", c)
		}
		for _, p := range c.History[0].Payouts {
			if !p.Done {
				return errf("reward for %s not done: %+v", p.PeerID, p)
			}
		}
		return nil
	})
	blocks := map[uint64]bool{}
	for _, p := range final.History[0].Payouts {
		if p.Amount != "1000" || blocks[p.Block] {
			t.Errorf("payout %+v: want 1000 base units in a block of its own", p)
		}
		blocks[p.Block] = true
	}
	for i, tr := range rn.trainers {
		if got := new(big.Int).Sub(balance(tr), before[i]); got.Cmp(big.NewInt(1000)) != 0 {
			t.Errorf("%s earned %s during the campaign, want the one reward of 1000", tr.Name, got)
		}
	}
	// Each trainer's round report shows its reward, checked on the ledger by the trainer.
	paidIn := map[string]uint64{}
	for _, p := range final.History[0].Payouts {
		paidIn[p.PeerID] = p.Block
	}
	round := final.History[0].RoundID
	for _, tr := range rn.trainers {
		var rep adminrpc.RoundReport
		waitFor(t, time.Minute, func() error {
			var err error
			if rep, err = tr.Client().RoundReport(ctx, round); err != nil {
				return err
			}
			if rep.Reward == nil {
				return errf("%s's report shows no reward yet", tr.Name)
			}
			return nil
		})
		rw := rep.Reward
		if !rw.Verified || rw.Amount != "1000" || rw.Block != paidIn[tr.Info().PeerID] || rw.AmountTokens == "" || rw.Warning != "" {
			t.Errorf("%s's reward = %+v, want 1000 base units in block %d, verified on the ledger", tr.Name, rw, paidIn[tr.Info().PeerID])
		}
	}
}
