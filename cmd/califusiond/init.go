package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"
)

func initCmd(g *globals) *cobra.Command {
	var (
		roles   []string
		listen  []string
		rpcAddr string
		boot    []string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a datadir with a new identity, an RPC token and a commented config.toml",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Default()
			if err := cfg.Apply(config.Overrides{Roles: splitRoles(roles), Listen: listen, RPCAddr: rpcAddr, Bootstrap: boot}); err != nil {
				return err
			}
			key, err := node.Init(g.datadir, cfg)
			if err != nil {
				return err
			}
			id, err := peer.IDFromPrivateKey(key)
			if err != nil {
				return err
			}
			res := struct {
				Datadir string   `json:"datadir"`
				PeerID  string   `json:"peer_id"`
				Roles   []string `json:"roles"`
			}{g.datadir, id.String(), cfg.Node.Roles}
			return g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "initialised %s\npeer id: %s\nroles:   %s\nstart it with: califusiond run --datadir %s\n", res.Datadir, res.PeerID, strings.Join(res.Roles, ","), res.Datadir)
			})
		},
	}
	cmd.Flags().StringSliceVar(&roles, "roles", nil, "roles: publisher,trainer,coordinator (default all)")
	cmd.Flags().StringArrayVar(&listen, "listen", nil, "libp2p listen multiaddr (repeatable)")
	cmd.Flags().StringVar(&rpcAddr, "rpc-addr", "", "admin RPC host:port")
	cmd.Flags().StringArrayVar(&boot, "bootstrap", nil, "bootstrap peer multiaddr with /p2p/ID (repeatable)")
	return cmd
}

// splitRoles accepts both --roles a,b and --roles a --roles b.
func splitRoles(in []string) []string {
	var out []string
	for _, r := range in {
		for _, p := range strings.Split(r, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
