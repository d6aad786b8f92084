package main

import (
	"fmt"
	"io"

	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/spf13/cobra"
)

func ledgerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "ledger", Short: "This node's ICP ledger account"}
	cmd.AddCommand(&cobra.Command{
		Use:   "balance",
		Short: "Show this node's balance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			b, err := c.LedgerBalance(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), b, func(w io.Writer) {
				fmt.Fprintf(w, "account: %s\nbalance: %s base units (%s, %d decimals)\nledger:  %s\n", b.Account, b.Balance, b.Symbol, b.Decimals, b.Ledger)
			})
		},
	})
	var p adminrpc.TransferParams
	transfer := &cobra.Command{
		Use:   "transfer PRINCIPAL AMOUNT",
		Short: "Send AMOUNT base units to PRINCIPAL (an ICRC-1 transfer)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p.ToPrincipal, p.Amount = args[0], args[1]
			r, err := c.LedgerTransfer(cmd.Context(), p)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) { fmt.Fprintf(w, "transferred in block %d of %s\n", r.BlockIndex, r.Ledger) })
		},
	}
	transfer.Flags().StringVar(&p.ToSubaccount, "subaccount", "", "recipient subaccount, 64 hex digits")
	transfer.Flags().StringVar(&p.Memo, "memo", "", "memo, hex, at most 32 bytes")
	cmd.AddCommand(transfer)
	return cmd
}
