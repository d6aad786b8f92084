package rounds

import (
	"testing"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/announce"
)

// TestSecureRoundAppliesTheStrategy: a secure fedavgm round (η 2) publishes base + 2·(mean
// delta) on its first round (zero state), the mean delta being what plain FedAvg of the trainers'
// updates gives, within twice the quantisation bound; it keeps the state for the new version.
func TestSecureRoundAppliesTheStrategy(t *testing.T) {
	n := newSecureNet(t, 4, 0)
	round := n.open(t, OpenParams{MinUpdates: 4, Strategy: fl.StrategyFedAvgM, ServerLR: 2, Momentum: 0.9})
	var models []*fl.File
	var samples []uint64
	for i := range n.trainers {
		id, f, s := n.train(t, i, round)
		models, samples = append(models, f), append(samples, s)
		if res, err := n.trainers[i].s.Submit(t.Context(), round, id); err != nil || !res.Accepted {
			t.Fatalf("Submit(trainer %d) = %+v, %v", i, res, err)
		}
	}
	r := n.waitRound(t, round, announce.RoundDone)
	want, _, err := fl.ServerOptimizer{Strategy: fl.StrategyFedAvg, LR: 2}.Step(n.base, fedAvg(t, n.base, models, samples), nil)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, n.published(t, r), want, 2*bound(r))
	if st, err := n.c.s.loadOptState(r.NewModel, n.base); err != nil || st == nil || st.Strategy != fl.StrategyFedAvgM {
		t.Errorf("the coordinator's state for the new version = %+v, %v; want fedavgm's momentum", st, err)
	}
}
