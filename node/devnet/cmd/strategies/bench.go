package main

import (
	"fmt"
	"strings"

	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// Target is the accuracy whose first round the table reports.
const Target = 0.95

// candidate is one setting of the table: a server strategy (and FedProx's μ) and the trainers'
// per-round schedule (epochs, batch, learning rate and its decay across rounds).
type candidate struct {
	Params   adminrpc.StrategyParams
	Schedule devnet.Schedule
}

// constantLR is the devnet trainers' own schedule: LocalEpochs, BatchSize, LearningRate in every
// round.
var constantLR = devnet.Schedule{Epochs: devnet.LocalEpochs, Batch: devnet.BatchSize, LR: devnet.LearningRate}

// Name is the setting as round_open / campaign_start params.
func (c candidate) Name() string {
	s := name(c.Params)
	sc := c.Schedule
	if sc.Epochs != devnet.LocalEpochs || sc.Batch != devnet.BatchSize || sc.LR != devnet.LearningRate {
		s += fmt.Sprintf(" epochs=%d batch=%d lr=%g", sc.Epochs, sc.Batch, sc.LR)
	}
	if !sc.Constant() {
		s += fmt.Sprintf(" lr_decay=%g", sc.Decay)
	}
	return s
}

func name(p adminrpc.StrategyParams) string {
	s := p.Strategy
	if s == "" {
		s = fl.StrategyFedAvg
	}
	o := optimizer(p).WithDefaults()
	switch o.Strategy {
	case fl.StrategyFedAvg:
		if o.LR != 1 {
			s += fmt.Sprintf(" lr=%g", o.LR)
		}
	case fl.StrategyFedAvgM:
		s += fmt.Sprintf(" lr=%g β=%g", o.LR, o.Beta1)
	case fl.StrategyFedAdam:
		s += fmt.Sprintf(" lr=%g β1=%g β2=%g τ=%g", o.LR, o.Beta1, o.Beta2, o.Tau)
	}
	if p.ProxMu != 0 {
		s += fmt.Sprintf(" μ=%g", p.ProxMu)
	}
	return s
}

// optimizer is the server step p names, as the coordinator builds it.
func optimizer(p adminrpc.StrategyParams) fl.ServerOptimizer {
	return fl.ServerOptimizer{Strategy: p.Strategy, LR: p.ServerLR, Beta1: p.Momentum, Beta2: p.Beta2, Tau: p.Tau}
}

// DefaultCandidate is the devnet's default campaign (devnet.DefaultCampaign).
func DefaultCandidate() candidate {
	p := devnet.DefaultCampaign()
	return candidate{Params: p.StrategyParams, Schedule: devnet.Schedule{Epochs: p.Epochs, Batch: p.BatchSize, LR: p.LearningRate, Decay: p.LRDecay}}
}

// Candidates are the table's rows: each strategy at its defaults and FedProx, with the trainers'
// constant learning rate and with a decay of it (lr_decay 0.85), the previous devnet default,
// and the devnet default.
func Candidates() []candidate {
	decayed := constantLR
	decayed.Decay = 0.85
	var out []candidate
	for _, sc := range []devnet.Schedule{constantLR, decayed} {
		out = append(out,
			candidate{Params: adminrpc.StrategyParams{Strategy: fl.StrategyFedAvg}, Schedule: sc},
			candidate{Params: adminrpc.StrategyParams{Strategy: fl.StrategyFedAvg, ProxMu: 0.01}, Schedule: sc},
			candidate{Params: adminrpc.StrategyParams{Strategy: fl.StrategyFedAvgM}, Schedule: sc},
			candidate{Params: adminrpc.StrategyParams{Strategy: fl.StrategyFedAdam}, Schedule: sc})
	}
	previous := candidate{Params: adminrpc.StrategyParams{Strategy: fl.StrategyFedAvgM, ServerLR: 1.2, Momentum: 0.8}, Schedule: devnet.Schedule{Epochs: devnet.LocalEpochs, Batch: devnet.BatchSize, LR: 0.5, Decay: 0.85}}
	return append(out, previous, DefaultCandidate())
}

// Grid is the search the devnet default was picked from: each server strategy over the
// trainers' (constant) learning rate, FedProx's μ, and a decay.
func Grid() []candidate {
	var g []candidate
	for _, tlr := range []float64{0.1, 0.2, 0.3} {
		sc := devnet.Schedule{Epochs: devnet.LocalEpochs, Batch: devnet.BatchSize, LR: tlr}
		add := func(p adminrpc.StrategyParams) { g = append(g, candidate{Params: p, Schedule: sc}) }
		for _, lr := range []float64{1, 1.5} {
			add(adminrpc.StrategyParams{Strategy: fl.StrategyFedAvg, ServerLR: lr})
		}
		for _, lr := range []float64{1, 1.2} {
			for _, m := range []float64{0.3, 0.5, 0.7, 0.8} {
				add(adminrpc.StrategyParams{Strategy: fl.StrategyFedAvgM, ServerLR: lr, Momentum: m})
			}
		}
		for _, lr := range []float64{0.1, 1, 2} {
			for _, tau := range []float64{0.03, 0.3} {
				add(adminrpc.StrategyParams{Strategy: fl.StrategyFedAdam, ServerLR: lr, Tau: tau})
			}
		}
		for _, mu := range []float64{0.001, 0.01} {
			add(adminrpc.StrategyParams{Strategy: fl.StrategyFedAvgM, ServerLR: 1, Momentum: 0.5, ProxMu: mu})
		}
		decayed := sc
		decayed.Decay = 0.9
		g = append(g, candidate{Params: adminrpc.StrategyParams{Strategy: fl.StrategyFedAvgM, ServerLR: 1, Momentum: 0.5}, Schedule: decayed})
	}
	return g
}

// bench is the devnet's data, cut as the devnet cuts it, and the central runs' accuracies by
// schedule.
type bench struct {
	rounds      int
	train, test *fl.Dataset
	shards      []*fl.Dataset
	central     map[devnet.Schedule]float64
}

// Trainers is the devnet's number of trainers.
const Trainers = 4

func newBench(rounds int) (*bench, error) {
	all, err := devnet.LoadDigits()
	if err != nil {
		return nil, err
	}
	b := &bench{rounds: rounds, central: map[devnet.Schedule]float64{}}
	b.train, b.test = all.Split(devnet.DataSeed, devnet.TestFraction)
	b.shards = b.train.Shards(Trainers, devnet.DataSeed, devnet.LabelSkew)
	return b, nil
}

// centralAcc is the accuracy of the central run of schedule sc (devnet.Schedule.Central): the
// same trainer, the same total epochs and learning-rate schedule, on the union of the shards.
func (b *bench) centralAcc(sc devnet.Schedule) (float64, error) {
	if a, ok := b.central[sc]; ok {
		return a, nil
	}
	m, err := sc.Central(b.train, b.rounds)
	if err != nil {
		return 0, err
	}
	b.central[sc] = fl.Accuracy(m, b.test)
	return b.central[sc], nil
}

// EvalTolerance is the coordinators' train.eval_tolerance in the devnet (the config default):
// the simulation refuses a round as they do.
const EvalTolerance = 0.02

// run simulates the devnet's rounds under c, the trainers shuffling with seed, and returns the
// accuracy after each and the rounds the eval floor refused.
func (b *bench) run(c candidate, seed uint64) (*fl.SimResult, error) {
	return b.sim(c, seed).Run(fl.NewLogReg(devnet.DigitsFeatures, devnet.DigitsClasses))
}

// runStory is run with the devnet story's events: the coordinator of round 1 is killed, so round
// 2 is aggregated by another one without its optimiser state, and the last trainer drops out of
// round 3 (secure rounds complete with the others).
func (b *bench) runStory(c candidate, seed uint64) (*fl.SimResult, error) {
	sim := b.sim(c, seed)
	sim.StateLost = func(round int) bool { return round == 2 }
	sim.Absent = func(round, trainer int) bool { return round == 3 && trainer == len(b.shards)-1 }
	return sim.Run(fl.NewLogReg(devnet.DigitsFeatures, devnet.DigitsClasses))
}

func (b *bench) sim(c candidate, seed uint64) fl.Simulation {
	return fl.Simulation{
		Shards: b.shards, Test: b.test, Rounds: b.rounds, Epochs: c.Schedule.Epochs, Batch: c.Schedule.Batch,
		LR: c.Schedule.LR, LRDecay: c.Schedule.Decay, ProxMu: c.Params.ProxMu, Optimizer: optimizer(c.Params), Seed: seed,
		EvalFloor: true, EvalTolerance: EvalTolerance,
	}
}

// reached is the first round (1-based) whose accuracy is at least Target (0: none).
func reached(acc []float64) int {
	for i, a := range acc {
		if a >= Target {
			return i + 1
		}
	}
	return 0
}

// refusal is one round the eval floor refused in one run.
type refusal struct {
	seed  uint64
	story bool
	round int
}

// seedStats are a setting's results over several shuffling seeds of the trainers (the daemons'
// seeds come from round and peer IDs, so the devnet runs one of many): n runs with other seeds,
// and n runs with the story's events (seed 7 and n−1 others).
type seedStats struct {
	n         int
	mean, min float64 // final accuracy over the other seeds
	within    int     // finals within 1 point of central
	// reachedMean is the mean round to Target over the runs that reached it, reachedWorst the
	// latest (0: some run never did), never how many runs never did.
	reachedMean  float64
	reachedWorst int
	never        int
	// storyMean, storyMin, storyWithin: the same over the story's runs.
	storyMean, storyMin float64
	storyWithin         int
	// refusals are every round of every run the eval floor refused; plainRefused and
	// storyRefused count the runs with at least one.
	refusals                   []refusal
	plainRefused, storyRefused int
}

// seedSeed is the i-th extra shuffling seed.
func seedSeed(i int) uint64 { return uint64(i+1) * 7919 }

func (b *bench) seeds(c candidate, n int, central float64) (seedStats, error) {
	st := seedStats{n: n, min: 1, storyMin: 1}
	sum := 0
	for i := range n {
		res, err := b.run(c, seedSeed(i))
		if err != nil {
			return st, err
		}
		f := res.Accuracy[len(res.Accuracy)-1]
		st.mean += f / float64(n)
		st.min = min(st.min, f)
		if f >= central-0.01 {
			st.within++
		}
		if r := reached(res.Accuracy); r == 0 {
			st.never++
		} else {
			sum += r
			st.reachedWorst = max(st.reachedWorst, r)
		}
		for _, r := range res.RefusedRounds {
			st.refusals = append(st.refusals, refusal{seedSeed(i), false, r})
		}
		if res.Refused > 0 {
			st.plainRefused++
		}
	}
	if st.never > 0 {
		st.reachedWorst = 0
	}
	if n > st.never {
		st.reachedMean = float64(sum) / float64(n-st.never)
	}
	for i := range n {
		seed := seedSeed(i - 1)
		if i == 0 {
			seed = devnet.DataSeed
		}
		res, err := b.runStory(c, seed)
		if err != nil {
			return st, err
		}
		f := res.Accuracy[len(res.Accuracy)-1]
		st.storyMean += f / float64(n)
		st.storyMin = min(st.storyMin, f)
		if f >= central-0.01 {
			st.storyWithin++
		}
		for _, r := range res.RefusedRounds {
			st.refusals = append(st.refusals, refusal{seed, true, r})
		}
		if res.Refused > 0 {
			st.storyRefused++
		}
	}
	return st, nil
}

// roundsTo is a "rounds to 0.95" cell: the round, or "never".
func roundsTo(r int) string {
	if r == 0 {
		return "never"
	}
	return fmt.Sprint(r)
}

// reachedCell is the other seeds' "rounds to 0.95": mean / worst, "never" when a run never got
// there (with how many).
func (st seedStats) reachedCell() string {
	switch {
	case st.never == st.n:
		return "never"
	case st.never > 0:
		return fmt.Sprintf("%.1f / never (%d of %d)", st.reachedMean, st.never, st.n)
	}
	return fmt.Sprintf("%.1f / %d", st.reachedMean, st.reachedWorst)
}

func header(rounds int) string {
	var b strings.Builder
	b.WriteString("| setting |")
	for r := 1; r <= rounds; r++ {
		fmt.Fprintf(&b, " r%d |", r)
	}
	b.WriteString(" final | central | gap | rounds to 0.95 | other seeds: rounds to 0.95 mean / worst | other seeds: mean final (worst) | gap mean / worst | story: mean final (worst) | gap mean / worst | within 1 pt: other seeds, story | runs with a refused round: other seeds, story |\n|---|")
	for range rounds {
		b.WriteString("---|")
	}
	b.WriteString("---|---|---|---|---|---|---|---|---|---|---|\n")
	return b.String()
}

func row(c candidate, res *fl.SimResult, st seedStats, central float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s |", c.Name())
	for _, a := range res.Accuracy {
		fmt.Fprintf(&b, " %.3f |", a)
	}
	final := res.Accuracy[len(res.Accuracy)-1]
	pt := func(a float64) float64 { return (a - central) * 100 }
	fmt.Fprintf(&b, " %.4f | %.4f | %+.2f pt | %s | %s | %.4f (%.4f) | %+.2f / %+.2f pt | %.4f (%.4f) | %+.2f / %+.2f pt | %d/%d, %d/%d | %d/%d, %d/%d |\n",
		final, central, pt(final), roundsTo(reached(res.Accuracy)), st.reachedCell(),
		st.mean, st.min, pt(st.mean), pt(st.min), st.storyMean, st.storyMin, pt(st.storyMean), pt(st.storyMin),
		st.within, st.n, st.storyWithin, st.n, st.plainRefused, st.n, st.storyRefused, st.n)
	return b.String()
}

// refusalLines says which rounds of which runs the eval floor refused, one run after another
// (the first maxRefusalRuns of them).
func refusalLines(c candidate, res *fl.SimResult, st seedStats) string {
	all := make([]refusal, 0, len(res.RefusedRounds)+len(st.refusals))
	for _, r := range res.RefusedRounds {
		all = append(all, refusal{devnet.DataSeed, false, r})
	}
	all = append(all, st.refusals...)
	if len(all) == 0 {
		return ""
	}
	var runs []string
	for i := 0; i < len(all); {
		j, rounds := i, []string{}
		for ; j < len(all) && all[j].seed == all[i].seed && all[j].story == all[i].story; j++ {
			rounds = append(rounds, fmt.Sprint(all[j].round))
		}
		kind := ""
		if all[i].story {
			kind = " (story)"
		}
		runs = append(runs, fmt.Sprintf("seed %d round %s%s", all[i].seed, strings.Join(rounds, ","), kind))
		i = j
	}
	more := ""
	if len(runs) > maxRefusalRuns {
		more = fmt.Sprintf(" and in %d more runs", len(runs)-maxRefusalRuns)
		runs = runs[:maxRefusalRuns]
	}
	return fmt.Sprintf("- %s: %d refused: %s%s\n", c.Name(), len(all), strings.Join(runs, "; "), more)
}

// maxRefusalRuns is how many runs a refusal line names.
const maxRefusalRuns = 6

// table runs c on the bench seed and n other seeds and returns its table row and its refusal
// line ("" when the floor refused nothing).
func (b *bench) table(c candidate, n int) (line, refusals string, err error) {
	central, err := b.centralAcc(c.Schedule)
	if err != nil {
		return "", "", err
	}
	res, err := b.run(c, devnet.DataSeed)
	if err != nil {
		return "", "", err
	}
	st, err := b.seeds(c, n, central)
	if err != nil {
		return "", "", err
	}
	return row(c, res, st, central), refusalLines(c, res, st), nil
}

// sweep is the central runs of devnet.Schedule.CentralSweep, one line, and the best.
func (b *bench) sweep() (string, error) {
	runs, err := devnet.DefaultSchedule.CentralSweep(b.train, b.test, b.rounds)
	if err != nil {
		return "", err
	}
	best := devnet.BestCentral(runs)
	var out strings.Builder
	out.WriteString("central runs at a constant rate (the sweep the devnet's central_best_accuracy takes the best of):")
	for _, r := range runs {
		fmt.Fprintf(&out, " %s: %.4f;", r, r.Accuracy)
	}
	fmt.Fprintf(&out, " best: %s, %.4f\n\n", best, best.Accuracy)
	return out.String(), nil
}
