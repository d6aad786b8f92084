package main

import (
	"strings"
	"testing"

	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// TestDevnetDefaultClosesTheGap is issue 17's goal, in the in-process simulation of the devnet's
// rounds: with the devnet's default campaign the final model is within 1 point of the best
// central run of the sweep (devnet.Schedule.CentralBest) and of the central run of its own
// schedule, on the bench seed, on 10 other trainer-shuffle seeds and on 10 runs with the story's
// failover and dropout, half a point on average, and the eval floor refuses no round of any of
// them. Plain fedavg at half the trainers' rate is not within 1 point, so the test can tell
// settings apart.
func TestDevnetDefaultClosesTheGap(t *testing.T) {
	b, err := newBench(10)
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultCandidate()
	central, err := b.centralAcc(c.Schedule)
	if err != nil {
		t.Fatal(err)
	}
	bestRun, err := devnet.DefaultSchedule.CentralBest(b.train, b.test, 10)
	if err != nil {
		t.Fatal(err)
	}
	best, which := bestRun.Accuracy, bestRun.String()
	res, err := b.run(c, devnet.DataSeed)
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.seeds(c, 10, central)
	if err != nil {
		t.Fatal(err)
	}
	final := res.Accuracy[len(res.Accuracy)-1]
	t.Logf("%s: central %.4f, best central %.4f (%s); bench seed %.4f; other seeds mean %.4f worst %.4f; story mean %.4f worst %.4f", c.Name(), central, best, which, final, st.mean, st.min, st.storyMean, st.storyMin)
	if best < central {
		t.Errorf("the sweep's best central run %.4f is below the default schedule's %.4f: the sweep misses it", best, central)
	}
	for _, f := range []struct {
		what string
		acc  float64
	}{{"the bench seed's final", final}, {"the other seeds' worst final", st.min}, {"the story runs' worst final", st.storyMin}} {
		if f.acc < best-0.01 {
			t.Errorf("%s: %s is %.4f, more than 1 point below the best central run %.4f", c.Name(), f.what, f.acc, best)
		}
	}
	for _, m := range []float64{st.mean, st.storyMean} {
		if m < best-0.005 {
			t.Errorf("%s: a mean final of %.4f is more than half a point below the best central run %.4f", c.Name(), m, best)
		}
	}
	if res.Refused != 0 || len(st.refusals) != 0 {
		t.Errorf("the eval floor refuses rounds of the default: %s", refusalLines(c, res, st))
	}
	slow := constantLR
	slow.LR /= 2
	plain, err := b.run(candidate{Params: adminrpc.StrategyParams{Strategy: fl.StrategyFedAvg}, Schedule: slow}, devnet.DataSeed)
	if err != nil {
		t.Fatal(err)
	}
	if p := plain.Accuracy[len(plain.Accuracy)-1]; p >= best-0.01 {
		t.Errorf("plain fedavg at lr %g ends at %.4f, within 1 point of the best central run %.4f: the bench cannot tell the settings apart", slow.LR, p, best)
	}
}

// The central run follows the setting's schedule: a decayed rate trains a different central
// model from the constant one.
func TestCentralFollowsTheSchedule(t *testing.T) {
	b, err := newBench(10)
	if err != nil {
		t.Fatal(err)
	}
	constant, err := b.centralAcc(constantLR)
	if err != nil {
		t.Fatal(err)
	}
	fast := constantLR
	fast.Decay = 0.1 // ten times smaller every round: little training after the first
	decayed, err := b.centralAcc(fast)
	if err != nil {
		t.Fatal(err)
	}
	if decayed >= constant {
		t.Errorf("central with lr_decay 0.1 = %.4f, want below the constant rate's %.4f", decayed, constant)
	}
}

func TestRoundsToTarget(t *testing.T) {
	for _, tc := range []struct {
		acc  []float64
		want string
	}{
		{[]float64{0.9, 0.95, 0.96}, "2"},
		{[]float64{0.951}, "1"},
		{[]float64{0.9, 0.949}, "never"},
	} {
		if got := roundsTo(reached(tc.acc)); got != tc.want {
			t.Errorf("roundsTo(reached(%v)) = %s, want %s", tc.acc, got, tc.want)
		}
	}
	for _, tc := range []struct {
		st   seedStats
		want string
	}{
		{seedStats{n: 4, reachedMean: 5.5, reachedWorst: 7}, "5.5 / 7"},
		{seedStats{n: 4, reachedMean: 6, never: 1}, "6.0 / never (1 of 4)"},
		{seedStats{n: 4, never: 4}, "never"},
	} {
		if got := tc.st.reachedCell(); got != tc.want {
			t.Errorf("reachedCell(%+v) = %q, want %q", tc.st, got, tc.want)
		}
	}
}

// The refusal line groups a run's refused rounds and names at most maxRefusalRuns runs.
func TestRefusalLines(t *testing.T) {
	c := DefaultCandidate()
	if got := refusalLines(c, &fl.SimResult{}, seedStats{}); got != "" {
		t.Errorf("refusalLines(no refusals) = %q, want \"\"", got)
	}
	st := seedStats{refusals: []refusal{{11, false, 2}, {11, false, 3}, {11, true, 3}}}
	want := "- " + c.Name() + ": 4 refused: seed 7 round 5; seed 11 round 2,3; seed 11 round 3 (story)\n"
	if got := refusalLines(c, &fl.SimResult{RefusedRounds: []int{5}}, st); got != want {
		t.Errorf("refusalLines = %q, want %q", got, want)
	}
	st = seedStats{}
	for i := range maxRefusalRuns + 2 {
		st.refusals = append(st.refusals, refusal{uint64(i), false, 1})
	}
	if got := refusalLines(c, &fl.SimResult{}, st); !strings.HasSuffix(got, " and in 2 more runs\n") {
		t.Errorf("refusalLines(%d runs) = %q, want it to end with \" and in 2 more runs\"", maxRefusalRuns+2, got)
	}
}
