package main

import (
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/spf13/cobra"
)

// tokens writes base units as "1.5 ICP (150000000 base units)" with the ledger's decimals and
// symbol from b; when they are unknown the base units alone.
func tokens(base string, b *adminrpc.BalanceResult) string {
	n, ok := new(big.Int).SetString(base, 10)
	if !ok || b == nil || b.Symbol == "" {
		return base + " base units"
	}
	return fmt.Sprintf("%s (%s base units)", icp.Token{Symbol: b.Symbol, Decimals: b.Decimals}.Format(n), base)
}

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
				fmt.Fprintf(w, "account:    %s\n", b.Account)
				if b.AccountID != "" {
					fmt.Fprintf(w, "account id: %s\n", b.AccountID)
				}
				fmt.Fprintf(w, "balance:    %s\nfee:        %s\nledger:     %s (%s)\n", tokens(b.Balance, &b), tokens(b.Fee, &b), b.Ledger, b.LedgerKind)
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "account",
		Short: "Show the account this node pays from: its principal and ICP account identifier",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			info, err := c.NodeInfo(cmd.Context())
			if err != nil {
				return err
			}
			out := struct {
				Principal string `json:"principal"`
				AccountID string `json:"account_id"`
				KeyKind   string `json:"key_kind,omitempty"`
			}{info.ICPPrincipal, info.ICPAccountID, info.ICPKeyKind}
			return g.print(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "%s\n", out.AccountID)
				fmt.Fprintf(cmd.ErrOrStderr(), "principal %s (%s key); send ICP to the account identifier above, ICRC-1 tokens to the principal\n", out.Principal, out.KeyKind)
			})
		},
	})
	var p adminrpc.TransferParams
	var amount, e8s string
	transfer := &cobra.Command{
		Use:   "transfer PRINCIPAL [BASE_UNITS]",
		Short: "Send tokens to PRINCIPAL (an ICRC-1 transfer): --amount 1.5 in tokens, or --e8s / BASE_UNITS",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p.ToPrincipal = args[0]
			given := 0
			for _, s := range []string{amount, e8s} {
				if s != "" {
					given++
				}
			}
			if len(args) == 2 {
				given++
				e8s = args[1]
			}
			if given != 1 {
				return errors.New("give the amount once: --amount in tokens (1.5), or --e8s / BASE_UNITS in base units")
			}
			var b *adminrpc.BalanceResult
			if bal, err := c.LedgerBalance(cmd.Context()); err == nil {
				b = &bal
			}
			p.Amount = e8s
			if amount != "" {
				if b == nil {
					return errors.New("the ledger's decimals are unknown (the ledger did not answer): give the amount in base units with --e8s")
				}
				n, err := icp.ParseTokens(amount, b.Decimals)
				if err != nil {
					return err
				}
				p.Amount = n.String()
			}
			if b != nil && !g.json {
				fmt.Fprintf(cmd.ErrOrStderr(), "sending %s plus a fee of %s\n", tokens(p.Amount, b), tokens(b.Fee, b))
			}
			r, err := c.LedgerTransfer(cmd.Context(), p)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) { fmt.Fprintf(w, "transferred in block %d of %s\n", r.BlockIndex, r.Ledger) })
		},
	}
	transfer.Flags().StringVar(&amount, "amount", "", "amount in tokens, e.g. 1.5")
	transfer.Flags().StringVar(&e8s, "e8s", "", "amount in the ledger's base units (e8s for ICP)")
	transfer.Flags().StringVar(&p.ToSubaccount, "subaccount", "", "recipient subaccount, 64 hex digits")
	transfer.Flags().StringVar(&p.Memo, "memo", "", "memo, hex, at most 32 bytes")
	cmd.AddCommand(transfer)
	return cmd
}
