package devnet

import (
	"fmt"
	"math"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// DefaultCampaign is the training part of the devnet's campaign_start: DefaultStrategy's
// server step and the trainers' per-round settings (LocalEpochs, BatchSize, LearningRate, the
// same in every round). The caller adds the model, rounds, min_updates, deadline, rule and
// clipping.
func DefaultCampaign() adminrpc.CampaignStartParams {
	s := DefaultStrategy
	s.Epochs, s.BatchSize, s.LearningRate = LocalEpochs, BatchSize, LearningRate
	return adminrpc.CampaignStartParams{StrategyParams: s}
}

// Schedule is the trainers' learning-rate schedule of a campaign: LR in round 0, multiplied by
// Decay once per round (Decay 0 or 1: constant), as node/campaign opens the rounds.
type Schedule struct {
	Epochs, Batch int
	LR, Decay     float64
}

// DefaultSchedule is the devnet campaign's: a constant learning rate.
var DefaultSchedule = Schedule{Epochs: LocalEpochs, Batch: BatchSize, LR: LearningRate}

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

// CentralSweepRates and CentralSweepLengths are the central runs CentralSweep trains: each
// learning rate for each multiple of the campaign's rounds × epochs.
var (
	CentralSweepRates   = []float64{0.1, 0.2, 0.3, 0.5}
	CentralSweepLengths = []int{1, 2}
)

// CentralRun is one central run of the sweep and its held-out accuracy.
type CentralRun struct {
	Epochs   int
	LR       float64
	Accuracy float64
}

// String names the run, e.g. "100 epochs at lr 0.3".
func (c CentralRun) String() string { return fmt.Sprintf("%d epochs at lr %g", c.Epochs, c.LR) }

// CentralSweep trains the central runs of CentralSweepRates × CentralSweepLengths: the built-in
// trainer on train with s's epochs and batch at a constant rate, scored on test, in that order.
func (s Schedule) CentralSweep(train, test *fl.Dataset, rounds int) ([]CentralRun, error) {
	var out []CentralRun
	for _, lr := range CentralSweepRates {
		for _, k := range CentralSweepLengths {
			epochs := k * rounds * s.Epochs
			m, err := fl.TrainLogReg(fl.NewLogReg(DigitsFeatures, DigitsClasses), train, epochs, s.Batch, lr, DataSeed)
			if err != nil {
				return nil, err
			}
			out = append(out, CentralRun{Epochs: epochs, LR: lr, Accuracy: fl.Accuracy(m, test)})
		}
	}
	return out, nil
}

// CentralBest is the sweep's best run, so a campaign is held against the best central run of a
// sweep rather than against the one schedule it ran.
func (s Schedule) CentralBest(train, test *fl.Dataset, rounds int) (CentralRun, error) {
	runs, err := s.CentralSweep(train, test, rounds)
	if err != nil {
		return CentralRun{}, err
	}
	return BestCentral(runs), nil
}

// BestCentral is the most accurate of runs (the first of equals; runs is not empty).
func BestCentral(runs []CentralRun) CentralRun {
	best := runs[0]
	for _, r := range runs[1:] {
		if r.Accuracy > best.Accuracy {
			best = r
		}
	}
	return best
}
