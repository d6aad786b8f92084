package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func nodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Inspect and connect the running node"}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "info",
			Short: "Show this node's identity, addresses and roles",
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
				return g.print(cmd.OutOrStdout(), info, func(w io.Writer) {
					fmt.Fprintf(w, "peer id:       %s\nroles:         %s\nversion:       %s\nicp principal: %s\nicp account:   %s\ndatadir:       %s\naddrs:\n",
						info.PeerID, strings.Join(info.Roles, ","), info.Version, info.ICPPrincipal, info.ICPAccount, info.Datadir)
					for _, a := range info.Addrs {
						fmt.Fprintf(w, "  %s\n", a)
					}
				})
			},
		},
		&cobra.Command{
			Use:   "peers",
			Short: "List connected peers",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := g.client()
				if err != nil {
					return err
				}
				peers, err := c.NodePeers(cmd.Context())
				if err != nil {
					return err
				}
				return g.print(cmd.OutOrStdout(), peers, func(w io.Writer) {
					tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "PEER\tLATENCY\tADDRESS")
					for _, p := range peers {
						addr := ""
						if len(p.Addrs) > 0 {
							addr = p.Addrs[0]
						}
						fmt.Fprintf(tw, "%s\t%.1fms\t%s\n", p.PeerID, p.LatencyMS, addr)
					}
					tw.Flush()
					fmt.Fprintf(w, "%d peers\n", len(peers))
				})
			},
		},
		&cobra.Command{
			Use:   "connect MULTIADDR",
			Short: "Connect to a peer by its full multiaddr (ending in /p2p/<peer ID>)",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.client()
				if err != nil {
					return err
				}
				res, err := c.NodeConnect(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return g.print(cmd.OutOrStdout(), res, func(w io.Writer) { fmt.Fprintf(w, "connected to %s\n", res.PeerID) })
			},
		},
		&cobra.Command{
			Use:   "directory",
			Short: "List nodes known from their presence announcements, with their roles",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := g.client()
				if err != nil {
					return err
				}
				dir, err := c.NodeDirectory(cmd.Context())
				if err != nil {
					return err
				}
				return g.print(cmd.OutOrStdout(), dir, func(w io.Writer) {
					tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "PEER\tROLES\tVERSION\tLAST ANNOUNCED")
					for _, e := range dir {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.PeerID, strings.Join(e.Roles, ","), e.Version, e.SentAt)
					}
					tw.Flush()
				})
			},
		},
	)
	cmd.AddCommand(nodeLogLevelCmd(g))
	return cmd
}
