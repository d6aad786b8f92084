package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/spf13/cobra"
)

func roundCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "round", Short: "Training rounds (open, list, close, report)"}
	var p adminrpc.RoundOpenParams
	open := &cobra.Command{
		Use:   "open MODEL_ID",
		Short: "Open a training round for a model (coordinator)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p.ModelID = args[0]
			r, err := c.RoundOpen(cmd.Context(), p)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) { fmt.Fprintf(w, "round %s opened\n", r.RoundID) })
		},
	}
	open.Flags().IntVar(&p.MinUpdates, "min-updates", 1, "accepted updates needed to aggregate")
	open.Flags().StringVar(&p.Deadline, "deadline", "10m", "deadline: a duration from now or an RFC 3339 time")
	open.Flags().StringVar(&p.Rule, "rule", fl.RuleFedAvg, "aggregation rule: "+fl.RuleList())
	open.Flags().Float64Var(&p.ClipNorm, "clip-norm", 0, "bound on the L2 norm of an update's delta (0: none)")
	open.Flags().StringVar(&p.ClipMode, "clip-mode", "reject", "an update beyond the bound is rejected, or scaled down to it (scale)")
	open.Flags().Uint64Var(&p.MaxSamples, "max-samples", 100000, "most samples one trainer's update may claim; it also caps the update's FedAvg weight")
	secureRoundFlags(open.Flags(), &p)
	strategyRoundFlags(open.Flags(), &p.StrategyParams)
	roundConfigFlag(open.Flags(), &p.Config)

	var model string
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the rounds this node knows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			rs, err := c.RoundList(cmd.Context(), model)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), rs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ROUND\tMODEL\tSTATE\tUPDATES\tRULE\tDEADLINE\tYOU\tNEW MODEL")
				for _, r := range rs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", r.RoundID, short(r.ModelID), r.State, r.Updates, r.MinUpdates, r.Rule, r.Deadline, standing(r), short(r.NewModel)+r.Error)
				}
				tw.Flush()
			})
		},
	}
	ls.Flags().StringVar(&model, "model", "", "only rounds of this model")

	closeCmd := &cobra.Command{
		Use:   "close ROUND_ID",
		Short: "Aggregate a round now if its minimum is met (coordinator)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := whileWaiting(!g.json && isTerminal(cmd.ErrOrStderr()), cmd.ErrOrStderr(), "aggregating", func() (adminrpc.RoundCloseResult, error) {
				return c.RoundClose(cmd.Context(), args[0])
			})
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) { fmt.Fprintf(w, "round aggregated into model %s\n", r.ModelID) })
		},
	}
	report := &cobra.Command{
		Use:   "report ROUND_ID",
		Short: "Show what a round aggregated and how (on a trainer: its own verdict, asked of the coordinator)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.RoundReport(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) { printRoundReport(w, r) })
		},
	}
	cmd.AddCommand(open, ls, closeCmd, report)
	return cmd
}

// standing is the YOU column of `round ls`: what this node can do with a round.
func standing(r adminrpc.RoundInfo) string {
	switch {
	case r.Submitted:
		return "submitted"
	case r.Joinable:
		return "joinable"
	}
	return "-"
}

func short(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

func printRoundReport(w io.Writer, r adminrpc.RoundReport) {
	fmt.Fprintf(w, "round %s (%s)\nbase model: %s\nnew model:  %s\naggregate sha256: %s\n\n", r.RoundID, r.Rule, r.BaseModel, r.NewModel, r.AggregateSHA256)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRAINER\tSAMPLES\tNORM\tVERDICT")
	for _, p := range r.Participants {
		verdict := "accepted"
		if p.Clipped {
			verdict = "accepted (clipped)"
		}
		if !p.Accepted {
			verdict = "rejected: " + p.Reason
		}
		fmt.Fprintf(tw, "%s\t%d\t%.4g\t%s\n", p.PeerID, p.Samples, p.Norm, verdict)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nmetrics: %s\ntimings: %s\nanchors:\n", kv(r.Metrics), kv(r.Timings))
	for _, a := range r.Anchors {
		fmt.Fprintf(w, "  %s\n", a)
	}
	if r.Reward != nil {
		fmt.Fprintln(w, rewardLine(*r.Reward))
	}
}

func kv(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%.4g", k, m[k])
	}
	return strings.Join(parts, " ")
}

func trainCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "train", Short: "Local training (trainer)"}
	var p adminrpc.TrainRunParams
	run := &cobra.Command{
		Use:   "run ROUND_ID",
		Short: "Train the round's model on local data with the training hook",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p.RoundID = args[0]
			if p.Data != "" {
				if p.Data, err = filepath.Abs(p.Data); err != nil {
					return err
				}
			}
			r, err := whileWaiting(!g.json && isTerminal(cmd.ErrOrStderr()), cmd.ErrOrStderr(), "training", func() (adminrpc.TrainRunResult, error) {
				return c.TrainRun(cmd.Context(), p)
			})
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) {
				fmt.Fprintf(w, "update %s: %d samples in %.2fs\nsubmit it with: %s --datadir %s update submit %s %s\n", r.UpdateID, r.Samples, r.Seconds, filepath.Base(os.Args[0]), g.datadir, p.RoundID, r.UpdateID)
			})
		},
	}
	run.Flags().StringVar(&p.Data, "data", "", "training data (default: train.data from the config)")
	run.Flags().StringVar(&p.Hook, "hook", "", "builtin or exec (default: train.hook from the config)")
	run.Flags().IntVar(&p.Epochs, "epochs", 0, "built-in trainer: local epochs (default: train.epochs)")
	run.Flags().IntVar(&p.BatchSize, "batch-size", 0, "built-in trainer: batch size (default: train.batch_size)")
	run.Flags().Float64Var(&p.LearningRate, "learning-rate", 0, "built-in trainer: learning rate (default: train.learning_rate)")
	cmd.AddCommand(run)
	return cmd
}

func updateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "update", Short: "Training updates (trainer)"}
	cmd.AddCommand(&cobra.Command{
		Use:   "submit ROUND_ID UPDATE_ID",
		Short: "Send a trained update to the round's coordinator",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := whileWaiting(!g.json && isTerminal(cmd.ErrOrStderr()), cmd.ErrOrStderr(), "submitting", func() (adminrpc.UpdateSubmitResult, error) {
				return c.UpdateSubmit(cmd.Context(), args[0], args[1])
			})
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) {
				fmt.Fprintf(w, "accepted (norm %.4g", r.Norm)
				if r.Clipped {
					fmt.Fprint(w, ", clipped to the bound")
				}
				fmt.Fprintln(w, ")")
				if r.Anchor != "" {
					fmt.Fprintf(w, "commitment anchored at %s\n", r.Anchor)
				}
			})
		},
	})
	return cmd
}
