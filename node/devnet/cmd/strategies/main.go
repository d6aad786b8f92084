// Command strategies runs the devnet's federated training in one process for each server
// strategy (and FedProx's μ) and trainers' learning-rate schedule on the devnet's label-skewed
// digits shards, with the very node/fl functions the nodes run, and prints accuracy per round
// against the centralized run of the same schedule, rounds to reach 0.95, and the rounds the
// coordinators' eval floor would refuse (BENCHMARKS.md, "Strategies on the devnet shards").
//
//	go run ./node/devnet/cmd/strategies [-grid] [-seeds N] [-rounds N]
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/califusion/califusion/node/devnet"
)

func main() {
	grid := flag.Bool("grid", false, "also try a grid of server_lr, momentum, tau, prox_mu and lr_decay")
	rounds := flag.Int("rounds", 10, "rounds per run")
	seeds := flag.Int("seeds", 10, "other shuffling seeds of the trainers each setting also runs with")
	flag.Parse()
	b, err := newBench(*rounds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "strategies:", err)
		os.Exit(1)
	}
	cands := Candidates()
	if *grid {
		cands = append(cands, Grid()...)
	}
	fmt.Printf("central: the same trainer on the union of the shards for %d × epochs, each round's epochs at the setting's learning rate of that round\n", *rounds)
	sweep, err := b.sweep()
	if err != nil {
		fmt.Fprintln(os.Stderr, "strategies:", err)
		os.Exit(1)
	}
	fmt.Print(sweep)
	fmt.Printf("the trainers shuffle with seed %d (+1000·round + trainer); each setting also runs with %d other seeds, and %d times with the story's events\n\n", devnet.DataSeed, *seeds, *seeds)
	fmt.Print(header(*rounds))
	var refused strings.Builder
	for _, c := range cands {
		line, refusals, err := b.table(c, *seeds)
		if err != nil {
			fmt.Fprintln(os.Stderr, "strategies:", c.Name(), err)
			os.Exit(1)
		}
		fmt.Print(line)
		refused.WriteString(refusals)
	}
	if refused.Len() > 0 {
		fmt.Printf("\nrounds the eval floor (train.eval_tolerance %g) refuses:\n%s", EvalTolerance, refused.String())
	} else {
		fmt.Printf("\nthe eval floor (train.eval_tolerance %g) refuses no round of any run\n", EvalTolerance)
	}
	fmt.Printf("\ndevnet default: %s\n", DefaultCandidate().Name())
}
