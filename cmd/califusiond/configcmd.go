package main

import (
	"io"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"
)

func configCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Inspect the configuration"}
	var path string
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration (defaults, then the datadir's config.toml)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(g.datadir, path)
			if err != nil {
				return err
			}
			b, err := cfg.Encode()
			if err != nil {
				return err
			}
			// JSON mirrors the TOML keys exactly: decode the TOML into a generic map.
			var asMap map[string]any
			if err := toml.Unmarshal(b, &asMap); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), asMap, func(w io.Writer) { w.Write(b) })
		},
	}
	show.Flags().StringVar(&path, "config", "", "config file (default <datadir>/config.toml)")
	cmd.AddCommand(show)
	return cmd
}
