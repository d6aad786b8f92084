// Command strategies runs the devnet's federated training in one process for each server
// strategy (and FedProx's μ) on the devnet's label-skewed digits shards, with the very node/fl
// functions the nodes run, and prints accuracy per round against the centralized run
// (BENCHMARKS.md, "Strategies").
//
//	go run ./node/devnet/cmd/strategies [-grid]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/califusion/califusion/node/devnet"
)

func main() {
	grid := flag.Bool("grid", false, "also try a grid of server_lr, momentum and prox_mu")
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
	fmt.Printf("central (same trainer, %d epochs on the union of the shards): %.4f\n\n", *rounds*devnet.LocalEpochs, b.central)
	fmt.Printf("the trainers shuffle with seed %d (+1000·round + trainer); each setting also runs with %d other seeds\n\n", devnet.DataSeed, *seeds)
	fmt.Print(header(*rounds))
	for _, c := range cands {
		res, err := b.run(c, devnet.DataSeed)
		if err == nil {
			var st seedStats
			if st, err = b.seeds(c, *seeds); err == nil {
				fmt.Print(row(c, res, st, b.central))
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "strategies:", c.Name(), err)
			os.Exit(1)
		}
	}
	fmt.Printf("\ndevnet default: %s\n", name(devnet.DefaultStrategy))
}
