package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

func nodeLogLevelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:       "log-level debug|info|warn|error",
		Short:     "Change the running daemon's log level: debug, info, warn or error (until it stops)",
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs), // refused before the daemon is asked
		ValidArgs: []string{"debug", "info", "warn", "error"},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.NodeLogLevel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) { fmt.Fprintf(w, "log level %s (was %s)\n", r.New, r.Old) })
		},
	}
}
