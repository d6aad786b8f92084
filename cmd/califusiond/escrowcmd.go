package main

import (
	"fmt"
	"io"

	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/spf13/cobra"
)

// printEscrowed adds model publish's escrow line: how many coordinators hold the key or a share.
func printEscrowed(w io.Writer, res adminrpc.PublishResult) {
	if res.Threshold >= 2 {
		fmt.Fprintf(w, "escrowed: %d coordinators hold their key shares (%d needed to unlock)\n", res.Escrowed, res.Threshold)
	} else if res.Escrowed > 0 {
		fmt.Fprintf(w, "escrowed: %d coordinators hold the key\n", res.Escrowed)
	}
}

// modelEscrowCmds are the threshold escrow verbs of model: escrow (deposit again) and
// coordinators (a signed coordinator update).
func modelEscrowCmds(g *globals) []*cobra.Command {
	escrow := &cobra.Command{
		Use:   "escrow MODEL_ID",
		Short: "Deposit again a model's key, or each coordinator's share of it, with the coordinators that lack it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.ModelEscrow(cmd.Context(), adminrpc.ModelEscrowParams{ModelID: args[0]})
			if err != nil {
				return err
			}
			if err := g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "%d of %d coordinators hold the key or their share; %d needed to unlock\n", res.Deposited, res.Holders, res.Needed)
				for _, f := range res.Failed {
					fmt.Fprintf(w, "failed: %s: %s\n", f.PeerID, f.Error)
				}
			}); err != nil {
				return err
			}
			if res.Deposited < res.Needed {
				return fmt.Errorf("only %d of the %d coordinators needed hold their shares: the model cannot be unlocked until they do; retry once they are reachable", res.Deposited, res.Needed)
			}
			return nil
		},
	}

	var up adminrpc.ModelCoordinatorsParams
	coords := &cobra.Command{
		Use:   "coordinators MODEL_ID --coordinator PEER_ID... [--threshold T]",
		Short: "Sign a new coordinator set (and threshold) for a lineage you published and hand it to its coordinators",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p := up
			p.ModelID = args[0]
			res, err := c.ModelCoordinators(cmd.Context(), p)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "lineage %s: coordinator update %d, %d coordinators, threshold %d; accepted by %d\n", res.Lineage, res.Seq, len(res.Coordinators), res.Threshold, res.Accepted)
				for _, f := range res.Failed {
					fmt.Fprintf(w, "failed: %s: %s\n", f.PeerID, f.Error)
				}
			})
		},
	}
	coords.Flags().StringArrayVar(&up.Coordinators, "coordinator", nil, "peer ID of a coordinator of the lineage from now on (repeatable, at most 16)")
	coords.Flags().UintVar(&up.Threshold, "threshold", 0, "shares needed to unlock versions published from now on (0 or 1: whole-key escrow)")
	return []*cobra.Command{escrow, coords}
}
