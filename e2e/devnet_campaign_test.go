package e2e

import (
	"math/big"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/califusion/califusion/node/devnet"
)

// checkDevnetCampaign checks the devnet's campaign story: one campaign ran every round (done,
// every round done, its rounds the training rounds, each tagged with the campaign by its
// coordinator); when the story killed a coordinator, another adopted the campaign from it and ran
// every round from the re-opened round 2 on; the round-3 dropout is listed; every secure round is
// within its bound of the plain FedAvg; rewards were paid once per accepted update (each trainer's
// balance moved by exactly reward × its contributions) in distinct blocks; the final model is
// within 1 point of the centralized run; and the devnet never trained or submitted for a trainer:
// every training in a trainer's log is the auto-trainer's, and each contribution was submitted
// by it.
func checkDevnetCampaign(t *testing.T, rep *devnet.Report, trainers int) {
	t.Helper()
	c, tr := rep.Campaign, rep.Training
	if c == nil || tr == nil {
		t.Fatalf("devnet report has campaign %+v, training %+v; want both", c, tr)
	}
	if c.State != "done" || len(c.History) != c.Rounds || len(tr.Rounds) != c.Rounds || c.MinUpdates != trainers || c.CampaignID == "" {
		t.Fatalf("campaign = %+v (%d training rounds), want done after its %d rounds of %d trainers", c, len(tr.Rounds), c.Rounds, trainers)
	}
	reward, ok := new(big.Int).SetString(c.Reward, 10)
	if !ok || reward.Sign() <= 0 || c.Reward != devnet.RewardPerUpdate {
		t.Fatalf("campaign reward %q, want %s base units per accepted update", c.Reward, devnet.RewardPerUpdate)
	}
	adopter := ""
	if tr.KilledCoordinator != "" {
		if len(c.AdoptedBy) != 1 || c.AdoptedBy[0].From != tr.KilledCoordinator || c.AdoptedBy[0].Coordinator == tr.KilledCoordinator {
			t.Errorf("campaign adopted by %+v, want one coordinator that took it over from %s", c.AdoptedBy, tr.KilledCoordinator)
		} else {
			adopter = c.AdoptedBy[0].Coordinator
		}
	}
	contributions := map[string]int{}
	blocks := map[uint64]bool{}
	paid := 0
	for i, h := range c.History {
		l := tr.Rounds[i]
		wantCoord := c.StartedOn
		if adopter != "" && h.Round >= 2 {
			wantCoord = adopter
		}
		// A round the evaluation floor refused (the dropout round can be one) keeps the previous
		// version, says so with both scores, and the campaign goes on.
		kept := h.State == "failed" && h.KeptPrevious && strings.Contains(h.Error, "kept previous version") && strings.Contains(h.Error, "base version's")
		if h.Round != i+1 || (h.State != "done" && !kept) || h.RoundID != l.RoundID || h.Coordinator != wantCoord || l.Coordinator != wantCoord {
			t.Errorf("campaign round %d = %+v (line %s on %s), want done (or kept previous version) on %s, the training round's ID", i+1, h, l.RoundID, l.Coordinator, wantCoord)
		}
		if l.CampaignID != c.CampaignID || l.CampaignRound != i+1 {
			t.Errorf("round %d: its coordinator %s lists it under campaign %q round %d, want %s round %d", i+1, l.Coordinator, l.CampaignID, l.CampaignRound, c.CampaignID, i+1)
		}
		if adopter != "" && h.Round == 2 && l.Reopens == "" {
			t.Errorf("round 2 on %s re-opens no round, want the one %s left open", l.Coordinator, tr.KilledCoordinator)
		}
		if l.Secure && !l.KeptPrevious && (l.FedAvgBound <= 0 || l.FedAvgGap > l.FedAvgBound) {
			t.Errorf("round %d: the secure aggregate is %.3g from the plain FedAvg of the same updates, bound %.3g", l.Round, l.FedAvgGap, l.FedAvgBound)
		}
		wantDropouts := ""
		if l.Secure && trainers > devnet.MinSecureTrainers && h.Round == min(3, c.Rounds) {
			wantDropouts = "trainer" + string(rune('0'+trainers))
		}
		if strings.Join(h.Dropouts, ",") != wantDropouts || strings.Join(l.Dropouts, ",") != wantDropouts {
			t.Errorf("round %d: dropouts %v (line %v), want %q", h.Round, h.Dropouts, l.Dropouts, wantDropouts)
		}
		// One reward per accepted contributor of a published round, each done, to exactly the
		// contributors; none for a round whose aggregate was not published.
		if h.KeptPrevious {
			if len(h.Payouts) != 0 {
				t.Errorf("round %d kept the previous version but paid rewards %+v", h.Round, h.Payouts)
			}
			continue
		}
		var payees []string
		for _, p := range h.Payouts {
			if !p.VerifiedByTrainer && h.Coordinator != tr.KilledCoordinator {
				t.Errorf("round %d: %s's own round_report does not show its reward verified on the ledger: %+v", h.Round, p.Node, p)
			}
			if !p.Done || p.Amount != c.Reward || p.Block == 0 || blocks[p.Block] {
				t.Errorf("round %d: payout %+v, want %s done in a block of its own", h.Round, p, c.Reward)
			}
			blocks[p.Block] = true
			payees = append(payees, p.Node)
			paid++
		}
		slices.Sort(payees)
		if want := slices.Sorted(slices.Values(h.Contributors)); strings.Join(payees, ",") != strings.Join(want, ",") || len(want) != l.Updates {
			t.Errorf("round %d: rewards paid to %v, want one to each of its %d contributors %v", h.Round, payees, l.Updates, want)
		}
		for _, n := range h.Contributors {
			contributions[n]++
		}
	}
	if c.Rewards.Count != paid || len(c.Rewards.Blocks) != paid || c.Rewards.Total != new(big.Int).Mul(reward, big.NewInt(int64(paid))).String() {
		t.Errorf("rewards = %+v, want %d payouts of %s", c.Rewards, paid, c.Reward)
	}
	for i := 1; i <= trainers; i++ {
		name := "trainer" + string(rune('0'+i))
		want := new(big.Int).Mul(reward, big.NewInt(int64(contributions[name])))
		if got := c.Rewards.BalanceDeltas[name]; got != want.String() || contributions[name] == 0 {
			t.Errorf("%s's balance moved by %s during the campaign, want %s (%d accepted updates × %s)", name, got, want, contributions[name], c.Reward)
		}
	}
	t.Logf("final held-out accuracy %.3f, central %.3f (gap %+.1f points), best central %.3f, %s (gap %+.1f points)", tr.FinalAccuracy, tr.CentralAccuracy,
		100*(tr.FinalAccuracy-tr.CentralAccuracy), tr.CentralBestAccuracy, tr.CentralBest, 100*(tr.FinalAccuracy-tr.CentralBestAccuracy))
	if tr.CentralBestAccuracy < tr.CentralAccuracy || tr.CentralBest == "" {
		t.Errorf("the best central run %.3f (%q) is below the same schedule's %.3f", tr.CentralBestAccuracy, tr.CentralBest, tr.CentralAccuracy)
	}
	if tr.FinalAccuracy < tr.CentralBestAccuracy-0.01 {
		t.Errorf("final accuracy %.3f is more than 1 point below the best centralized run %.3f (%s)", tr.FinalAccuracy, tr.CentralBestAccuracy, tr.CentralBest)
	}
	checkAutoTrained(t, rep)
}

var (
	trainedLine   = regexp.MustCompile(`msg="update trained" subsys=rounds round=([0-9a-f]+) update=([0-9a-f]+)`)
	autoTrained   = regexp.MustCompile(`msg="auto-train: update trained" subsys=autotrain round=([0-9a-f]+) .* update=([0-9a-f]+)`)
	autoSubmitted = regexp.MustCompile(`msg="auto-train: update submitted" subsys=autotrain round=([0-9a-f]+) .* update=([0-9a-f]+)`)
)

// checkAutoTrained reads every trainer's log: each update it trained was trained by its
// auto-trainer (no train_run from outside), and for each round it contributed to, its
// auto-trainer submitted an update to that round (no update_submit from outside).
func checkAutoTrained(t *testing.T, rep *devnet.Report) {
	t.Helper()
	contributed := map[string][]string{} // trainer → round IDs
	for _, l := range rep.Training.Rounds {
		for _, n := range l.Contributors {
			contributed[n] = append(contributed[n], l.RoundID)
		}
		for _, p := range l.Participants {
			if p.Verdict != "rejected" {
				contributed[p.Node] = append(contributed[p.Node], l.RoundID)
			}
		}
	}
	for _, n := range rep.Nodes {
		if !strings.HasPrefix(n.Name, "trainer") {
			continue
		}
		raw, err := os.ReadFile(n.Datadir + ".log")
		if err != nil {
			t.Fatal(err)
		}
		log := string(raw)
		auto := map[string]bool{}
		for _, m := range autoTrained.FindAllStringSubmatch(log, -1) {
			auto[m[1]+"/"+m[2]] = true
		}
		trained := trainedLine.FindAllStringSubmatch(log, -1)
		for _, m := range trained {
			if !auto[m[1]+"/"+m[2]] {
				t.Errorf("%s trained update %s for round %s, but not through its auto-trainer", n.Name, m[2], m[1])
			}
		}
		submitted := map[string]bool{}
		for _, m := range autoSubmitted.FindAllStringSubmatch(log, -1) {
			submitted[m[1]] = true
		}
		if len(contributed[n.Name]) == 0 || len(trained) < len(contributed[n.Name]) {
			t.Errorf("%s contributed to rounds %v and trained %d updates, want at least one per contribution", n.Name, contributed[n.Name], len(trained))
		}
		for _, round := range contributed[n.Name] {
			if !submitted[round] {
				t.Errorf("%s contributed to round %s, but its auto-trainer logged no submission to it", n.Name, round)
			}
		}
	}
}
