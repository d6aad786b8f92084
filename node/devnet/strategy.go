package devnet

import (
	"fmt"
	"math"

	"github.com/califusion/califusion/node/fl"
)

// strategyRef replays DefaultStrategy's server step (fedavg or fedavgm) on the devnet's plain
// FedAvg references of the secure rounds, so the reference is the version the coordinator should
// have published. Its momentum is built from the references, so it drifts from the coordinator's
// (built from the secure, quantised aggregates) by at most mErr per weight: each round adds the
// quantisation bound q, and the carried part shrinks by β.
type strategyRef struct {
	m    []float64 // the reference momentum after the last secure round
	mErr float64   // bound on |coordinator's momentum − m| per weight
}

// step returns the version the coordinator publishes from base and the FedAvg reference mean
// (base + the mean delta, per weight, in the base's tensor order), and the bound on its distance
// from the secure one, q being the quantisation bound of one secure aggregate. carried says
// whether the coordinator started from the state of base's round (its report's
// opt_state_carried); without it the momentum starts from zero, as the coordinator's did.
func (s *strategyRef) step(base *fl.File, mean []float64, carried bool, q float64) ([]float64, float64, error) {
	o := fl.ServerOptimizer{Strategy: DefaultStrategy.Strategy, LR: DefaultStrategy.ServerLR, Beta1: DefaultStrategy.Momentum, Beta2: DefaultStrategy.Beta2, Tau: DefaultStrategy.Tau}.WithDefaults()
	if o.Strategy != fl.StrategyFedAvg && o.Strategy != fl.StrategyFedAvgM {
		return nil, 0, fmt.Errorf("the devnet's FedAvg reference replays fedavg and fedavgm, not %s", o.Strategy)
	}
	out := make([]float64, len(mean))
	if o.Strategy == fl.StrategyFedAvg {
		k := 0
		for i := range base.Tensors {
			for j := range base.Tensors[i].Elements() {
				out[k] = base.Tensors[i].At(j) + o.LR*(mean[k]-base.Tensors[i].At(j))
				k++
			}
		}
		return out, o.LR * q, nil
	}
	if !carried || len(s.m) != len(mean) {
		s.m, s.mErr = make([]float64, len(mean)), 0
	}
	// The coordinator keeps its momentum in float32: + its rounding.
	s.mErr = q + o.Beta1*s.mErr + 1e-6
	k := 0
	for i := range base.Tensors {
		for j := range base.Tensors[i].Elements() {
			w := base.Tensors[i].At(j)
			s.m[k] = o.Beta1*s.m[k] + (mean[k] - w)
			out[k] = w + o.LR*s.m[k]
			if math.IsNaN(out[k]) {
				return nil, 0, fmt.Errorf("the reference step is not finite")
			}
			k++
		}
	}
	return out, o.LR * s.mErr, nil
}
