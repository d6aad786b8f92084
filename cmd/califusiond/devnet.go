package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/califusion/califusion/node/devnet"
	"github.com/spf13/cobra"
)

func devnetCmd(g *globals) *cobra.Command {
	var o devnet.Options
	var secure bool
	cmd := &cobra.Command{
		Use:   "devnet",
		Short: "Run a local multi-node CaliFusion network and tell its story",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			o.Bin, o.JSON, o.Plain = bin, g.json, !secure
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return devnet.Run(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "", "directory for the nodes' datadirs and devnet.json (default: a new temporary directory)")
	cmd.Flags().IntVar(&o.Trainers, "trainers", 4, "number of trainer nodes")
	cmd.Flags().IntVar(&o.Rounds, "rounds", 10, "training rounds to run")
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "stay up after the story until SIGINT/SIGTERM")
	cmd.Flags().IntVar(&o.Coordinators, "coordinators", 3, "number of coordinator nodes the lineage names (separate from the publisher)")
	cmd.Flags().IntVar(&o.Threshold, "threshold", 2, "coordinators that must release their share of a key to unlock it (1 to --coordinators)")
	cmd.Flags().BoolVar(&secure, "secure", true, "secure rounds (SecAgg+; needs at least 3 trainers): the coordinator sees only the sum of the masked updates; --secure=false runs plain FedAvg")
	cmd.Flags().StringVar(&o.Ledger, "ledger", "icp", "emulated ledger: icp (the ICP ledger itself, as in the default configuration) or icrc (an ICRC-3 ledger)")
	return cmd
}
