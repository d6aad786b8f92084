package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/califusion/califusion/node"
	"github.com/spf13/cobra"
)

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and the protocols this binary speaks",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return printVersion(g, cmd.OutOrStdout()) },
	}
}

// printVersion prints node.BuildInfo (`version` and `--version`).
func printVersion(g *globals, out io.Writer) error {
	b := node.BuildInfo()
	return g.print(out, b, func(w io.Writer) {
		commit := b.Commit
		if commit == "" {
			commit = "unknown"
		}
		if b.Modified {
			commit += " (modified)"
		}
		p := b.Protocols
		fmt.Fprintf(w, "califusiond %s\ncommit:       %s\ngo:           %s\nprotocols:    %s\nkex purposes: %s\ntopics:       %s\ndht prefix:   %s\n",
			b.Version, commit, b.GoVersion, strings.Join(p.Streams, ", "), strings.Join(p.KexPurposes, ", "), strings.Join(p.Topics, ", "), p.DHTPrefix)
	})
}
