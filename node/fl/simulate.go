package fl

import "fmt"

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
}

// Run starts from model and returns the test accuracy after each round and the last version.
func (s Simulation) Run(model *File) ([]float64, *File, error) {
	rule := s.Rule
	if rule == "" {
		rule = RuleFedAvg
	}
	base := model
	var st *OptState
	acc := make([]float64, 0, s.Rounds)
	for r := range s.Rounds {
		agg, err := NewAggregator(rule, base, Options{MaxWeight: s.MaxWeight})
		if err != nil {
			return nil, nil, err
		}
		for i, d := range s.Shards {
			u, err := TrainProx(base, d, s.Epochs, s.Batch, s.LR, s.Seed+uint64(r)*1000+uint64(i), s.ProxMu)
			if err != nil {
				return nil, nil, fmt.Errorf("round %d, shard %d: %w", r+1, i, err)
			}
			if err := agg.Add(u, uint64(len(d.X))); err != nil {
				return nil, nil, err
			}
		}
		res, err := agg.Result()
		if err != nil {
			return nil, nil, err
		}
		if !s.Optimizer.Identity() {
			if res, st, err = s.Optimizer.Step(base, res, st); err != nil {
				return nil, nil, err
			}
		}
		base = res
		acc = append(acc, Accuracy(base, s.Test))
	}
	return acc, base, nil
}
