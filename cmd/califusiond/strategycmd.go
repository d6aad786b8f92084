package main

import (
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/spf13/pflag"
)

// strategyRoundFlags adds round open's strategy flags (round_open's strategy, server_lr,
// momentum, beta2, tau and prox_mu).
func strategyRoundFlags(fs *pflag.FlagSet, p *adminrpc.StrategyParams) {
	fs.StringVar(&p.Strategy, "strategy", "", "server step on the rule's aggregate: fedavg (the aggregate itself), fedavgm (server momentum) or fedadam (default fedavg)")
	fs.Float64Var(&p.ServerLR, "server-lr", 0, "server learning rate η (0: the strategy's default: 1, fedadam 0.5)")
	fs.Float64Var(&p.Momentum, "momentum", 0, "fedavgm's momentum β, fedadam's β1, in [0, 1) (0: the default, 0.9)")
	fs.Float64Var(&p.Beta2, "beta2", 0, "fedadam's β2, in [0, 1) (0: the default, 0.99)")
	fs.Float64Var(&p.Tau, "tau", 0, "fedadam's adaptivity τ, in (0, 1] (0: the default, 0.03)")
	fs.Float64Var(&p.ProxMu, "prox-mu", 0, "FedProx μ: trainers' built-in trainer adds μ/2·‖w − w_base‖² to its loss (0: none)")
	fs.IntVar(&p.Epochs, "epochs", 0, "trainers' local epochs for the round (0: each trainer's train.epochs)")
	fs.IntVar(&p.BatchSize, "batch-size", 0, "trainers' mini-batch size for the round (0: each trainer's own)")
	fs.Float64Var(&p.LearningRate, "learning-rate", 0, "trainers' learning rate for the round (0: each trainer's own)")
}
