package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func modelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Publish, find, fetch and export models"}

	var pub adminrpc.PublishParams
	var priceTokens string
	publish := &cobra.Command{
		Use:   "publish FILE",
		Short: "Encrypt FILE, announce it and offer it for PRICE base units",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p := pub
			if p.Path, err = filepath.Abs(args[0]); err != nil {
				return err
			}
			if p.Name == "" {
				p.Name = filepath.Base(args[0])
			}
			if priceTokens != "" {
				b, err := c.LedgerBalance(cmd.Context())
				if err != nil {
					return fmt.Errorf("the ledger's decimals are unknown (%v): give the price in base units with --price", err)
				}
				n, err := icp.ParseTokens(priceTokens, b.Decimals)
				if err != nil {
					return err
				}
				p.Price = n.String()
			}
			res, err := c.ModelPublish(cmd.Context(), p)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "model id: %s\nroot:     %s\nsize:     %d bytes in %d chunks\nanchored: %v\n", res.ModelID, res.Root, res.Size, res.Chunks, res.Anchored)
				printEscrowed(w, res)
			})
		},
	}
	publish.Flags().StringVar(&pub.Name, "name", "", "model name (default: the file name)")
	publish.Flags().StringVar(&pub.Price, "price", "0", "price in the ledger's base units")
	publish.Flags().StringVar(&priceTokens, "price-tokens", "", "price in tokens, e.g. 1.5 (instead of --price)")
	publish.Flags().StringVar(&pub.Description, "description", "", "free text shown to buyers")
	publish.Flags().Uint64Var(&pub.ChunkSize, "chunk-size", 0, "chunk size in bytes (default 1 MiB, at most 4 MiB)")
	publish.Flags().UintVar(&pub.Threshold, "threshold", 0, "escrow the key t-of-n: each --coordinator holds one share and any T of them release it (2 ≤ T ≤ the coordinators; default: each holds the whole key)")
	publish.Flags().StringArrayVar(&pub.Coordinators, "coordinator", nil, "peer ID of a coordinator the new lineage authorises to hold its key, run its rounds and publish its versions (repeatable, at most 16; default: this node if it is a coordinator, else none)")

	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the models in this node's catalog",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			models, err := c.ModelList(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), models, func(w io.Writer) {
				printModelList(w, models)
			})
		},
	}

	show := &cobra.Command{
		Use:   "show MODEL_ID",
		Short: "Show a model's manifest, anchor and local state",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			m, err := c.ModelGet(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if n, ok := new(big.Int).SetString(m.Price, 10); ok && m.PriceTokens == "" {
				if b, err := c.LedgerBalance(cmd.Context()); err == nil { // the node reads the ledger's decimals and symbol
					tok := icp.Token{Symbol: b.Symbol, Decimals: b.Decimals}
					m.PriceTokens, m.Fee = tok.Format(n), b.Fee
					if fee, ok := new(big.Int).SetString(b.Fee, 10); ok {
						m.FeeTokens = tok.Format(fee)
					}
				}
			}
			return g.print(cmd.OutOrStdout(), m, func(w io.Writer) {
				fmt.Fprintf(w, "model id:       %s\nname:           %s\nsize:           %d bytes, %d chunks of %d\nroot:           %s\nkey commitment: %s\nprice:          %s to %s\npublisher:      %s\nlineage:        %s\ncreated:        %s\nanchor:         %s\nlocal chunks:   %d/%d\nunlocked:       %v\nproviders:      %d\n",
					m.ModelID, m.Name, m.Size, m.Chunks, m.ChunkSize, m.Root, m.KeyCommitment, priceText(m), m.Payee.Owner, m.Publisher, m.Lineage, m.CreatedAt, m.Anchor.State, m.LocalChunks, m.Chunks, m.Unlocked, len(m.Providers))
				if m.Parent != "" {
					fmt.Fprintf(w, "parent:         %s\n", m.Parent)
				}
			})
		},
	}

	var detach bool
	fetch := &cobra.Command{
		Use:   "fetch MODEL_ID",
		Short: "Download a model's ciphertext from its providers (resumable)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			job, err := c.ModelFetch(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if detach {
				return g.print(cmd.OutOrStdout(), job, func(w io.Writer) {
					fmt.Fprintf(w, "job %s started; follow it with `califusiond%s job watch %s`\n", job.JobID, g.datadirHint(), job.JobID)
				})
			}
			st, err := watchJob(cmd, g, c, job.JobID)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), st, func(w io.Writer) { fmt.Fprintf(w, "fetched %s: %d bytes\n", args[0], st.BytesTotal) })
		},
	}
	fetch.Flags().BoolVar(&detach, "detach", false, "return the job ID at once instead of waiting")

	var force bool
	export := &cobra.Command{
		Use:   "export MODEL_ID PATH",
		Short: "Decrypt a model you hold the key for into PATH",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			path, err := filepath.Abs(args[1])
			if err != nil {
				return err
			}
			res, err := c.ModelExportWith(cmd.Context(), adminrpc.ExportParams{ModelID: args[0], Path: path, Overwrite: force})
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), res, func(w io.Writer) { fmt.Fprintf(w, "wrote %s (%d bytes, sha256 %s)\n", res.Path, res.Size, res.SHA256) })
		},
	}
	export.Flags().BoolVar(&force, "force", false, "replace PATH if it exists")
	var payAgain bool
	pay := &cobra.Command{
		Use:   "pay MODEL_ID",
		Short: "Pay a model's price to its payee (an ICRC-1 transfer with the binding memo)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			b := showPayment(cmd, g, c, args[0])
			r, err := c.ModelPayWith(cmd.Context(), adminrpc.PayParams{ModelID: args[0], Again: payAgain})
			if err != nil {
				return err
			}
			if n, ok := new(big.Int).SetString(r.Amount, 10); ok && b != nil {
				tok := icp.Token{Symbol: b.Symbol, Decimals: b.Decimals}
				r.AmountTokens, r.Fee = tok.Format(n), b.Fee
				if fee, ok := new(big.Int).SetString(b.Fee, 10); ok {
					r.FeeTokens = tok.Format(fee)
				}
			}
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) {
				if r.AlreadyPaid {
					fmt.Fprintf(w, "already paid %s in block %d of %s (nothing was paid now; --again pays once more)\n", tokens(r.Amount, b), r.BlockIndex, r.Ledger)
				} else {
					fmt.Fprintf(w, "paid %s in block %d of %s\n", tokens(r.Amount, b), r.BlockIndex, r.Ledger)
				}
				fmt.Fprintf(w, "unlock with: califusiond model unlock %s --block %d\n", args[0], r.BlockIndex)
			})
		},
	}
	pay.Flags().BoolVar(&payAgain, "again", false, "pay even if this node already paid for the model's lineage")
	var block int64
	unlock := &cobra.Command{
		Use:   "unlock MODEL_ID",
		Short: "Get a model's key from a coordinator against a payment (pays first without --block)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p := adminrpc.UnlockParams{ModelID: args[0]}
			if block >= 0 {
				b := uint64(block)
				p.BlockIndex = &b
			}
			r, err := c.ModelUnlock(cmd.Context(), p)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) { fmt.Fprintf(w, "model %s unlocked\n", args[0]) })
		},
	}
	unlock.Flags().Int64Var(&block, "block", -1, "ledger block of an earlier payment")
	var buyForce bool
	buy := &cobra.Command{
		Use:   "buy MODEL_ID PATH",
		Short: "Fetch, pay for, unlock and export a model in one step",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			path, err := filepath.Abs(args[1])
			if err != nil {
				return err
			}
			// Refused before anything is fetched or paid (the export would refuse it after).
			if _, err := os.Lstat(path); err == nil && !buyForce {
				return fmt.Errorf("%s already exists: choose another path, or pass --force to replace it (nothing was fetched or paid)", path)
			}
			job, err := c.ModelFetch(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if _, err := watchJob(cmd, g, c, job.JobID); err != nil {
				return err
			}
			showPayment(cmd, g, c, args[0])
			if _, err := c.ModelUnlock(cmd.Context(), adminrpc.UnlockParams{ModelID: args[0]}); err != nil {
				return err
			}
			res, err := c.ModelExportWith(cmd.Context(), adminrpc.ExportParams{ModelID: args[0], Path: path, Overwrite: buyForce})
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "bought and wrote %s (%d bytes, sha256 %s)\n", res.Path, res.Size, res.SHA256)
			})
		},
	}
	buy.Flags().BoolVar(&buyForce, "force", false, "replace PATH if it exists")
	cmd.AddCommand(publish, ls, show, fetch, pay, unlock, buy, export)
	cmd.AddCommand(modelStorageCmds(g)...)
	cmd.AddCommand(modelEscrowCmds(g)...)
	return cmd
}

func jobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Follow background jobs"}
	cmd.AddCommand(jobVerbs(g)...)
	cmd.AddCommand(&cobra.Command{
		Use:   "status JOB_ID",
		Short: "Show a job's state and progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.JobStatus(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), st, func(w io.Writer) {
				fmt.Fprintf(w, "state: %s\nbytes: %d/%d\npeers: %d\n", st.State, st.BytesDone, st.BytesTotal, st.Peers)
				if st.Error != "" {
					fmt.Fprintf(w, "error: %s\n", st.Error)
				}
			})
		},
	})
	return cmd
}

// followJob polls a job until it ends, drawing a progress bar (bytes, rate, peers, ETA) when
// bar is true. A failed job is returned as an error.
func followJob(ctx context.Context, c *adminrpc.Client, id string, bar bool, w io.Writer) (adminrpc.JobStatus, error) {
	var pb *progressbar.ProgressBar
	if bar {
		pb = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetDescription("fetching"),
		)
	}
	for {
		st, err := c.JobStatus(ctx, id)
		if err != nil {
			return st, err
		}
		if pb != nil && st.BytesTotal > 0 {
			pb.ChangeMax64(int64(st.BytesTotal))
			pb.Describe(fmt.Sprintf("fetching (%d peers)", st.Peers))
			pb.Set64(int64(st.BytesDone))
		}
		switch st.State {
		case "done":
			if pb != nil {
				pb.Finish()
				fmt.Fprintln(w)
			}
			return st, nil
		case "failed":
			if pb != nil {
				fmt.Fprintln(w)
			}
			if st.Error == "" {
				return st, fmt.Errorf("job %s failed without saying why: see the daemon's log", id)
			}
			return st, errors.New(st.Error)
		case "cancelled":
			if pb != nil {
				fmt.Fprintln(w)
			}
			return st, adminrpc.Errorf(adminrpc.CodeConflict, "job %s was cancelled (a fetch keeps its verified chunks: fetching again resumes from them)", id)
		}
		select {
		case <-ctx.Done():
			if pb != nil {
				fmt.Fprintln(w)
			}
			return st, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// whileWaiting runs fn, showing a spinner with the elapsed time on w when show is true (long
// synchronous calls: training, submitting an update, aggregating a round).
func whileWaiting[T any](show bool, w io.Writer, desc string, fn func() (T, error)) (T, error) {
	if !show {
		return fn()
	}
	pb := progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionClearOnFinish(),
	)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				pb.Add(1)
			}
		}
	}()
	v, err := fn()
	close(done)
	pb.Finish()
	return v, err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// priceText is a model's price as tokens with base units, plus the fee, when the node knew them.
func priceText(m adminrpc.ModelDetail) string {
	if m.PriceTokens == "" {
		return m.Price + " base units"
	}
	s := fmt.Sprintf("%s (%s base units)", m.PriceTokens, m.Price)
	if m.FeeTokens != "" {
		s += " + fee " + m.FeeTokens
	}
	return s
}

// showPayment tells, before paying, what a model costs with the fee and what the account holds;
// it returns the ledger's balance details (nil when the ledger did not answer).
func showPayment(cmd *cobra.Command, g *globals, c *adminrpc.Client, modelID string) *adminrpc.BalanceResult {
	bal, err := c.LedgerBalance(cmd.Context())
	if err != nil {
		return nil
	}
	if m, err := c.ModelGet(cmd.Context(), modelID); err == nil && !g.json && m.Price != "0" {
		fmt.Fprintf(cmd.ErrOrStderr(), "price %s + fee %s, paid to %s (balance %s)\n", tokens(m.Price, &bal), tokens(bal.Fee, &bal), m.Payee.Owner, tokens(bal.Balance, &bal))
	}
	return &bal
}
