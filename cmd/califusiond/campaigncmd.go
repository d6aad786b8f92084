package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/spf13/cobra"
)

func campaignCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "campaign", Short: "Campaigns: rounds back to back on one lineage (coordinator)"}
	var p adminrpc.CampaignStartParams
	var reward string
	start := &cobra.Command{
		Use:   "start MODEL_ID",
		Short: "Run up to --rounds rounds, each on the version the previous one published",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p.ModelID = args[0]
			if reward != "" {
				if p.Reward != "" {
					return errors.New("give the reward once: --reward in tokens (0.01), or --reward-e8s in base units")
				}
				b, err := c.LedgerBalance(cmd.Context())
				if err != nil {
					return fmt.Errorf("the ledger's decimals are unknown (%v): give the reward in base units with --reward-e8s", err)
				}
				n, err := icp.ParseTokens(reward, b.Decimals)
				if err != nil {
					return err
				}
				p.Reward = n.String()
			}
			r, err := c.CampaignStart(cmd.Context(), p)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) {
				fmt.Fprintf(w, "campaign %s started: up to %d rounds from %s (round %s open)\n", r.CampaignID, r.Rounds, short(r.ModelID), r.History[0].RoundID)
			})
		},
	}
	f := start.Flags()
	f.IntVar(&p.Rounds, "rounds", 10, "rounds to run at most")
	f.IntVar(&p.MinUpdates, "min-updates", 1, "accepted updates each round needs to aggregate")
	f.StringVar(&p.Deadline, "deadline", "10m", "each round's deadline, a duration")
	f.StringVar(&p.Rule, "rule", fl.RuleFedAvg, "aggregation rule: "+fl.RuleList())
	f.Float64Var(&p.ClipNorm, "clip-norm", 0, "bound on the L2 norm of an update's delta (0: none)")
	f.StringVar(&p.ClipMode, "clip-mode", "", "reject (default) or scale an update beyond the bound")
	f.Uint64Var(&p.MaxSamples, "max-samples", 0, "most samples one update may claim (0: 100000)")
	f.BoolVar(&p.Secure, "secure", false, "secure rounds (SecAgg+)")
	f.Float64Var(&p.Clip, "clip", 0, "secure: each delta coordinate is clamped to ±clip (0: the default, 1)")
	f.Float64Var(&p.TargetAccuracy, "target", 0, "stop once a version scores this accuracy on train.eval_data (0: never)")
	f.IntVar(&p.Patience, "patience", 0, "stop after this many rounds without a better version (0: never)")
	strategyRoundFlags(f, &p.StrategyParams)
	roundConfigFlag(f, &p.Config)
	f.Float64Var(&p.LRDecay, "lr-decay", 0, "multiply --learning-rate by this once per round, in (0, 1] (0: no decay)")
	f.StringVar(&reward, "reward", "", "reward paid to each accepted contributor of each published round, in tokens (e.g. 0.01), from this coordinator's account")
	f.StringVar(&p.Reward, "reward-e8s", "", "reward paid to each accepted contributor of each published round, in the ledger's base units, from this coordinator's account")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List this coordinator's campaigns",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			cs, err := c.CampaignList(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), cs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CAMPAIGN\tSTATE\tROUNDS\tBEST\tCURRENT\tWHY")
				for _, c := range cs {
					fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%.4f\t%s\t%s\n", c.CampaignID, c.State, campaignRounds(c), c.Rounds, c.Best, short(c.Current), c.Why)
				}
				tw.Flush()
			})
		},
	}
	show := func(use, short string, call func(*adminrpc.Client, *cobra.Command, string) (adminrpc.Campaign, error)) *cobra.Command {
		return &cobra.Command{
			Use: use + " CAMPAIGN_ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.client()
				if err != nil {
					return err
				}
				r, err := call(c, cmd, args[0])
				if err != nil {
					return err
				}
				return g.print(cmd.OutOrStdout(), r, func(w io.Writer) { printCampaign(w, r) })
			},
		}
	}
	cmd.AddCommand(start, ls,
		show("show", "Show a campaign and its rounds", func(c *adminrpc.Client, cmd *cobra.Command, id string) (adminrpc.Campaign, error) {
			return c.CampaignShow(cmd.Context(), id)
		}),
		show("stop", "Stop a campaign after the round it runs", func(c *adminrpc.Client, cmd *cobra.Command, id string) (adminrpc.Campaign, error) {
			return c.CampaignStop(cmd.Context(), id)
		}))
	return cmd
}

func printCampaign(w io.Writer, c adminrpc.Campaign) {
	fmt.Fprintf(w, "campaign %s: %s", c.CampaignID, c.State)
	if c.Why != "" {
		fmt.Fprintf(w, " (%s)", c.Why)
	}
	fmt.Fprintf(w, "; %d of at most %d rounds; best accuracy %.4f; current version %s\n", campaignRounds(c), c.Rounds, c.Best, c.Current)
	if c.AdoptedFrom != "" {
		fmt.Fprintf(w, "taken over from coordinator %s when it went silent\n", c.AdoptedFrom)
	}
	if c.Note != "" {
		fmt.Fprintf(w, "note: %s\n", c.Note)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tROUND\tSTATE\tCONTRIBUTORS\tACCURACY\tBASE\tNEW MODEL")
	for i, r := range c.History {
		n := r.Index
		if n == 0 {
			n = i + 1
		}
		if r.Coordinator != "" {
			r.Error = strings.TrimSpace("run by " + r.Coordinator + " " + r.Error)
		}
		result := short(r.NewModel)
		if r.Kept {
			result = "kept previous version"
		} else if r.Error != "" {
			result = r.Error
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%d\t%.4f\t%.4f\t%s\n", n, r.RoundID, r.State, r.Contributors, r.Accuracy, r.BaseAccuracy, result)
	}
	tw.Flush()
}

// campaignRounds is how many of its rounds campaign c has run (a re-opened round counts once).
func campaignRounds(c adminrpc.Campaign) int {
	n := 0
	for i, r := range c.History {
		n = max(n, cmp.Or(r.Index, i+1))
	}
	return n
}
