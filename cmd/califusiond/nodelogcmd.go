package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"
)

// logLevels are the levels node log-level takes.
var logLevels = []string{"debug", "info", "warn", "error"}

func nodeLogLevelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "log-level debug|info|warn|error",
		Short: "Change the running daemon's log level: debug, info, warn or error (until it stops)",
		Args: cobra.MatchAll(cobra.ExactArgs(1), func(_ *cobra.Command, args []string) error {
			// Refused before the daemon is asked, in the daemon's own words.
			if !slices.Contains(logLevels, args[0]) {
				return fmt.Errorf("unknown log level %q: use debug, info, warn or error", args[0])
			}
			return nil
		}),
		ValidArgs: logLevels,
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
