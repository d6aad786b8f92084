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

// candidate is one strategy setting of the table.
type candidate adminrpc.StrategyParams

// Name is the setting as round_open params.
func (c candidate) Name() string { return name(adminrpc.StrategyParams(c)) }

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

// Candidates are the table's rows: each strategy at its defaults, FedProx, and the devnet default.
func Candidates() []candidate {
	return []candidate{
		{Strategy: fl.StrategyFedAvg},
		{Strategy: fl.StrategyFedAvg, ProxMu: 0.01},
		{Strategy: fl.StrategyFedAvgM},
		{Strategy: fl.StrategyFedAdam},
		candidate(devnet.DefaultStrategy),
	}
}

// Grid is the search the devnet default was picked from.
func Grid() []candidate {
	var g []candidate
	for _, lr := range []float64{1.5, 2, 3} {
		g = append(g, candidate{Strategy: fl.StrategyFedAvg, ServerLR: lr})
	}
	for _, lr := range []float64{0.7, 1, 1.2, 1.5, 2} {
		for _, m := range []float64{0.5, 0.8, 0.9, 0.95} {
			g = append(g, candidate{Strategy: fl.StrategyFedAvgM, ServerLR: lr, Momentum: m})
		}
	}
	for _, lr := range []float64{0.1, 0.5, 1} {
		for _, tau := range []float64{0.001, 0.03, 0.1} {
			g = append(g, candidate{Strategy: fl.StrategyFedAdam, ServerLR: lr, Tau: tau})
		}
	}
	for _, mu := range []float64{0.001, 0.01, 0.1} {
		g = append(g, candidate{Strategy: fl.StrategyFedAvg, ProxMu: mu})
		g = append(g, candidate{Strategy: fl.StrategyFedAvgM, ServerLR: 2, Momentum: 0.8, ProxMu: mu})
	}
	return g
}

// bench is the devnet's data, cut as the devnet cuts it, and the central run's accuracy.
type bench struct {
	rounds      int
	train, test *fl.Dataset
	shards      []*fl.Dataset
	central     float64
}

// Trainers is the devnet's number of trainers.
const Trainers = 4

func newBench(rounds int) (*bench, error) {
	all, err := devnet.LoadDigits()
	if err != nil {
		return nil, err
	}
	b := &bench{rounds: rounds}
	b.train, b.test = all.Split(devnet.DataSeed, devnet.TestFraction)
	b.shards = b.train.Shards(Trainers, devnet.DataSeed, devnet.LabelSkew)
	central, err := fl.TrainLogReg(fl.NewLogReg(devnet.DigitsFeatures, devnet.DigitsClasses), b.train, rounds*devnet.LocalEpochs, devnet.BatchSize, devnet.LearningRate, devnet.DataSeed)
	if err != nil {
		return nil, err
	}
	b.central = fl.Accuracy(central, b.test)
	return b, nil
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
		Shards: b.shards, Test: b.test, Rounds: b.rounds, Epochs: devnet.LocalEpochs, Batch: devnet.BatchSize,
		LR: devnet.LearningRate, ProxMu: c.ProxMu, Optimizer: optimizer(adminrpc.StrategyParams(c)), Seed: seed,
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

// seedStats are a setting's final accuracies over several shuffling seeds of the trainers
// (the daemons' seeds come from round and peer IDs, so the devnet runs one of many).
type seedStats struct {
	mean, min float64
	within    int // finals within 1 point of central
	n         int
	// The same over the story's events (runStory), seed 7 included; storyRefused counts the
	// runs in which the eval floor refused a round (the devnet story fails on one).
	storyMean    float64
	storyWithin  int
	storyRefused int
}

// seedSeed is the i-th extra shuffling seed.
func seedSeed(i int) uint64 { return uint64(i+1) * 7919 }

func (b *bench) seeds(c candidate, n int) (seedStats, error) {
	st := seedStats{min: 1, n: n}
	for i := range n {
		res, err := b.run(c, seedSeed(i))
		if err != nil {
			return st, err
		}
		f := res.Accuracy[len(res.Accuracy)-1]
		st.mean += f / float64(n)
		st.min = min(st.min, f)
		if f >= b.central-0.01 {
			st.within++
		}
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
		if f >= b.central-0.01 {
			st.storyWithin++
		}
		if res.Refused > 0 {
			st.storyRefused++
		}
	}
	return st, nil
}

func header(rounds int) string {
	var b strings.Builder
	b.WriteString("| strategy |")
	for r := 1; r <= rounds; r++ {
		fmt.Fprintf(&b, " r%d |", r)
	}
	b.WriteString(" final | gap to central | rounds to 0.95 | refused rounds | other seeds: mean final (min) | within 1 pt | story: mean final | within 1 pt | runs with a refused round |\n|---|")
	for range rounds {
		b.WriteString("---|")
	}
	b.WriteString("---|---|---|---|---|---|---|---|---|\n")
	return b.String()
}

func row(c candidate, res *fl.SimResult, st seedStats, central float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s |", c.Name())
	for _, a := range res.Accuracy {
		fmt.Fprintf(&b, " %.3f |", a)
	}
	final := res.Accuracy[len(res.Accuracy)-1]
	to := "—"
	if r := reached(res.Accuracy); r > 0 {
		to = fmt.Sprint(r)
	}
	fmt.Fprintf(&b, " %.4f | %+.2f pt | %s | %d | %.4f (%.4f) | %d/%d | %.4f | %d/%d | %d/%d |\n", final, (final-central)*100, to, res.Refused, st.mean, st.min, st.within, st.n,
		st.storyMean, st.storyWithin, st.n, st.storyRefused, st.n)
	return b.String()
}
