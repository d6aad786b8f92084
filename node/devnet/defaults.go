package devnet

import (
	"math"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// DefaultLRDecay is the devnet campaign's lr_decay: round r (0-based) of the campaign trains
// with LearningRate·DefaultLRDecay^r. With it (and DefaultStrategy, LocalEpochs, BatchSize,
// LearningRate) the simulated campaign ends within 1 point of the central run of the same
// schedule on every one of 20 trainer-shuffle seeds, with and without the story's failover and
// dropout, and the eval floor refuses none of their rounds. Chosen on these shards (the grid of
// BENCHMARKS.md, "Strategies on the devnet shards"; go run ./node/devnet/cmd/strategies -grid).
const DefaultLRDecay = 0.85

// DefaultCampaign is the training part of the devnet's campaign_start: DefaultStrategy's
// server step and the trainers' per-round settings (LocalEpochs, BatchSize, LearningRate decayed
// by DefaultLRDecay). The caller adds the model, rounds, min_updates, deadline, rule and clipping.
func DefaultCampaign() adminrpc.CampaignStartParams {
	s := DefaultStrategy
	s.Epochs, s.BatchSize, s.LearningRate = LocalEpochs, BatchSize, LearningRate
	return adminrpc.CampaignStartParams{StrategyParams: s, LRDecay: DefaultLRDecay}
}

// Schedule is the trainers' learning-rate schedule of a campaign: LR in round 0, multiplied by
// Decay once per round (Decay 0 or 1: constant), as node/campaign opens the rounds.
type Schedule struct {
	Epochs, Batch int
	LR, Decay     float64
}

// DefaultSchedule is the devnet campaign's.
var DefaultSchedule = Schedule{Epochs: LocalEpochs, Batch: BatchSize, LR: LearningRate, Decay: DefaultLRDecay}

// At is the learning rate of round r (0-based).
func (s Schedule) At(r int) float64 {
	if s.Constant() {
		return s.LR
	}
	return s.LR * math.Pow(s.Decay, float64(r))
}

// Constant reports whether the rate does not decay.
func (s Schedule) Constant() bool { return s.Decay <= 0 || s.Decay == 1 }

// Central trains the central baseline under s: the same built-in trainer on the union of the
// shards (train) for rounds × s.Epochs epochs, each round's epochs at that round's learning rate
// (At). With a constant rate it is one run of rounds × s.Epochs epochs shuffled with DataSeed;
// with a decay, round r's epochs shuffle with DataSeed + r.
func (s Schedule) Central(train *fl.Dataset, rounds int) (*fl.File, error) {
	m := fl.NewLogReg(DigitsFeatures, DigitsClasses)
	if s.Constant() {
		return fl.TrainLogReg(m, train, rounds*s.Epochs, s.Batch, s.LR, DataSeed)
	}
	for r := range rounds {
		var err error
		if m, err = fl.TrainLogReg(m, train, s.Epochs, s.Batch, s.At(r), DataSeed+uint64(r)); err != nil {
			return nil, err
		}
	}
	return m, nil
}
