// Command califusiond is the CaliFusion daemon and its command-line client.
package main

import (
	"encoding/json"
	"io"
	"os"
	"slices"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/spf13/cobra"
)

// globals are the flags every verb shares.
type globals struct {
	datadir string
	json    bool
}

func main() {
	g := &globals{}
	var version bool
	root := &cobra.Command{
		Use:           "califusiond",
		Short:         "CaliFusion: encrypted models, private data, paid federated training",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if version {
				return printVersion(g, cmd.OutOrStdout())
			}
			return cmd.Help()
		},
	}
	root.Flags().BoolVar(&version, "version", false, "print the version, commit, Go version and protocols (as `version`)")
	root.PersistentFlags().StringVar(&g.datadir, "datadir", config.DefaultDatadir(), "node directory (default $"+config.EnvHome+" or ~/.califusion)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print results as JSON")
	root.AddCommand(initCmd(g), runCmd(g), configCmd(g), nodeCmd(g), modelCmd(g), jobCmd(g), anchorCmd(g), ledgerCmd(g), roundCmd(g), campaignCmd(g), trainCmd(g), updateCmd(g), devnetCmd(g), versionCmd(g), repoCmd(g), metricsCmd(g))
	strictCommands(root)
	err := root.Execute()
	// A flag error can come before --json is parsed: look for it in the raw arguments too.
	os.Exit(report(err, g.json || slices.Contains(os.Args[1:], "--json"), os.Stdout, os.Stderr))
}

// client finds the daemon serving the datadir.
func (g *globals) client() (*adminrpc.Client, error) { return adminrpc.Dial(g.datadir) }

// print writes v as indented JSON with --json, or calls human otherwise.
func (g *globals) print(w io.Writer, v any, human func(io.Writer)) error {
	if g.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human(w)
	return nil
}
