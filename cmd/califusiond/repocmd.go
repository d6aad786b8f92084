package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
)

// repoCmd is `repo gc|stat`: the node's model storage.
func repoCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "repo", Short: "Manage the model ciphertext this node stores"}
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Remove the ciphertext of versions superseded in their lineage (never published, pinned or in-use ones)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.RepoGC(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				for _, m := range res.Removed {
					fmt.Fprintf(w, "removed %s  %s  %s\n", short(m.ModelID), m.Name, humanize.IBytes(m.Bytes))
				}
				fmt.Fprintf(w, "freed %s in %d models; %d held versions kept\n", humanize.IBytes(res.FreedBytes), res.Models, len(res.Kept))
			})
		},
	}
	stat := &cobra.Command{
		Use:   "stat",
		Short: "Show the models held, blob bytes on disk, keys, pins and the storage cap",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.RepoStat(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), st, func(w io.Writer) {
				capText := "none (store.max_blob_bytes = 0)"
				if st.MaxBlobBytes > 0 {
					capText = fmt.Sprintf("%s, %d%% used", humanize.IBytes(st.MaxBlobBytes), st.UsedPercent)
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "models in catalog:\t%d\n", st.Models)
				fmt.Fprintf(tw, "held complete:\t%d\n", st.Complete)
				fmt.Fprintf(tw, "held in part:\t%d\n", st.Partial)
				fmt.Fprintf(tw, "blob bytes on disk:\t%s\n", humanize.IBytes(st.BlobBytes))
				fmt.Fprintf(tw, "reclaimable by gc:\t%s\n", humanize.IBytes(st.ReclaimableBytes))
				fmt.Fprintf(tw, "keys held:\t%d\n", st.KeysHeld)
				fmt.Fprintf(tw, "pinned:\t%d\n", st.Pinned)
				fmt.Fprintf(tw, "storage cap:\t%s\n", capText)
				tw.Flush()
			})
		},
	}
	cmd.AddCommand(gc, stat)
	return cmd
}

// modelStorageCmds are `model rm|pin|unpin`.
func modelStorageCmds(g *globals) []*cobra.Command {
	var p adminrpc.ModelRmParams
	rm := &cobra.Command{
		Use:   "rm MODEL_ID",
		Short: "Drop a model's local chunks and stop seeding it (the manifest stays unless --forget)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			q := p
			q.ModelID = args[0]
			res, err := c.ModelRm(cmd.Context(), q)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				what := "chunks removed, manifest kept"
				if res.Forgotten {
					what = "chunks removed, manifest forgotten"
				}
				fmt.Fprintf(w, "%s: %s, %s freed\n", short(res.ModelID), what, humanize.IBytes(res.FreedBytes))
			})
		},
	}
	rm.Flags().BoolVar(&p.Forget, "forget", false, "also remove the manifest from the catalog (refused for the parent of another known version)")
	rm.Flags().BoolVar(&p.Force, "force", false, "remove a model this node published (it may be its only seeder)")
	pin := func(use, help string, pinned bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " MODEL_ID",
			Short: help,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.client()
				if err != nil {
					return err
				}
				res, err := c.ModelPin(cmd.Context(), args[0], pinned)
				if err != nil {
					return err
				}
				return g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
					fmt.Fprintf(w, "%s: pinned %v\n", res.ModelID, res.Pinned)
				})
			},
		}
	}
	return []*cobra.Command{rm,
		pin("pin", "Keep a model's ciphertext whatever repo gc and the storage cap say", true),
		pin("unpin", "Let repo gc and the storage cap remove a model again once it is superseded", false),
	}
}
