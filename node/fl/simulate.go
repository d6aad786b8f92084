package fl

import (
	"context"
	"fmt"
	"math"
)

// Simulation describes federated rounds run in one process, with the very functions the nodes
// run: each trainer's built-in trainer (TrainProx) on its shard, the round's aggregation rule
// (NewAggregator, each update weighing its samples up to MaxWeight), then the strategy's server
// step (ServerOptimizer.Step) with the state the previous round left.
type Simulation struct {
	Shards    []*Dataset
	Test      *Dataset // scored after every round
	Rounds    int
	Epochs    int // local epochs per round
	Batch     int
	LR        float64 // the trainers' learning rate
	ProxMu    float64 // FedProx's μ (0: none)
	Rule      string  // "": fedavg
	MaxWeight uint64  // the round's per-trainer sample ceiling (0: none)
	Optimizer ServerOptimizer
	// Seed derives each trainer's shuffling seed per round.
	Seed uint64
	// EvalFloor refuses, as a coordinator with train.eval_data does, a round whose version
	// scores on Test below its base by more than EvalTolerance: the lineage keeps its base (and
	// the optimiser its state), and the next round trains on the base again.
	EvalFloor     bool
	EvalTolerance float64
	// Absent, if set, tells the trainers (shard indices) missing from a round (1-based): a
	// dropout. StateLost, if set, tells the rounds aggregated without the previous round's
	// optimiser state (another coordinator aggregates them: failover).
	Absent    func(round, trainer int) bool
	StateLost func(round int) bool
	// LRDecay multiplies LR once per round, as a campaign's lr_decay does: round r (0-based)
	// trains with LR·LRDecay^r (0: no decay).
	LRDecay float64
}

// lrAt is the trainers' learning rate in round r (0-based).
func (s Simulation) lrAt(r int) float64 {
	if s.LRDecay <= 0 {
		return s.LR
	}
	return s.LR * math.Pow(s.LRDecay, float64(r))
}

// SimResult is what a Simulation ran to.
type SimResult struct {
	Accuracy []float64 // on Test, after each round (the kept version's)
	Final    *File
	Refused  int // rounds the eval floor refused
	// RefusedRounds are those rounds (1-based).
	RefusedRounds []int
}

// Run starts from model and returns the test accuracy after each round and the last version.
func (s Simulation) Run(model *File) (*SimResult, error) {
	rule := s.Rule
	if rule == "" {
		rule = RuleFedAvg
	}
	base := model
	var st *OptState
	out := &SimResult{Accuracy: make([]float64, 0, s.Rounds)}
	for r := range s.Rounds {
		agg, err := NewAggregator(rule, base, Options{MaxWeight: s.MaxWeight})
		if err != nil {
			return nil, err
		}
		if s.StateLost != nil && s.StateLost(r+1) {
			st = nil
		}
		for i, d := range s.Shards {
			if s.Absent != nil && s.Absent(r+1, i) {
				continue
			}
			u, err := TrainProxContext(context.Background(), base, d, s.Epochs, s.Batch, s.lrAt(r), s.Seed+uint64(r)*1000+uint64(i), s.ProxMu)
			if err != nil {
				return nil, fmt.Errorf("round %d, shard %d: %w", r+1, i, err)
			}
			if err := agg.Add(u, uint64(len(d.X))); err != nil {
				return nil, err
			}
		}
		res, err := agg.Result()
		if err != nil {
			return nil, err
		}
		next := st
		if !s.Optimizer.Identity() {
			if res, next, err = s.Optimizer.Step(base, res, st); err != nil {
				return nil, err
			}
		}
		if s.EvalFloor && Accuracy(res, s.Test) < Accuracy(base, s.Test)-s.EvalTolerance {
			out.Refused++
			out.RefusedRounds = append(out.RefusedRounds, r+1)
		} else {
			base, st = res, next
		}
		out.Accuracy = append(out.Accuracy, Accuracy(base, s.Test))
	}
	out.Final = base
	return out, nil
}
