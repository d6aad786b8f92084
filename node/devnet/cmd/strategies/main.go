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
	fmt.Print(header(*rounds))
	for _, c := range cands {
		acc, err := b.run(c)
		if err != nil {
			fmt.Fprintln(os.Stderr, "strategies:", c.Name(), err)
			os.Exit(1)
		}
		fmt.Print(row(c, acc, b.central))
	}
	fmt.Printf("\ndevnet default: %s\n", name(devnet.DefaultStrategy))
}
