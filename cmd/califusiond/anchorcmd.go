package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

func anchorCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "anchor", Short: "Audit the commitments anchored in Calimero"}
	cmd.AddCommand(&cobra.Command{
		Use:   "verify MODEL_ID",
		Short: "Read a model's anchor afresh from Calimero and check it against its manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.AnchorVerify(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), st, func(w io.Writer) {
				fmt.Fprintf(w, "anchor %s: %s\n", st.Key, st.State)
				if st.Error != "" {
					fmt.Fprintf(w, "reason: %s\n", st.Error)
				}
			})
		},
	})
	return cmd
}
