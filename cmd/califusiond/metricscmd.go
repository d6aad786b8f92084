package main

import (
	"github.com/califusion/califusion/node/metrics"
	"github.com/spf13/cobra"
)

func metricsCmd(*globals) *cobra.Command {
	cmd := &cobra.Command{Use: "metrics", Short: "Prometheus metrics and the Grafana dashboard"}
	cmd.AddCommand(&cobra.Command{
		Use:   "dashboard",
		Short: "Print the Grafana dashboard (JSON) over the node's metrics, to import into Grafana",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(metrics.Dashboard)
			return err
		},
	})
	return cmd
}
