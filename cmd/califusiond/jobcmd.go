package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/spf13/cobra"
)

// jobVerbs are the job verbs beyond `job status`.
func jobVerbs(g *globals) []*cobra.Command {
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List this node's jobs, newest first",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.JobList(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), list, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "JOB\tKIND\tSUBJECT\tSTATE\tBYTES\tPEERS\tSTARTED\tENDED")
				for _, j := range list {
					subject := j.Subject
					if len(subject) > 16 {
						subject = subject[:16]
					}
					ended := j.EndedAt
					if ended == "" {
						ended = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", j.JobID, j.Kind, subject, j.State, j.BytesDone, j.BytesTotal, j.Peers, j.StartedAt, ended)
				}
				tw.Flush()
			})
		},
	}
	cancel := &cobra.Command{
		Use:   "cancel JOB_ID",
		Short: "Stop a running job (a cancelled fetch keeps its verified chunks; fetching again resumes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			j, err := c.JobCancel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), j, func(w io.Writer) {
				fmt.Fprintf(w, "job %s cancelled (%d of %d bytes kept)\n", j.JobID, j.BytesDone, j.BytesTotal)
			})
		},
	}
	watch := &cobra.Command{
		Use:   "watch JOB_ID",
		Short: "Follow a job until it ends, with a progress bar on a terminal",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := watchJob(cmd, g, c, args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), st, func(w io.Writer) { fmt.Fprintf(w, "job %s done: %d bytes\n", args[0], st.BytesTotal) })
		},
	}
	return []*cobra.Command{ls, cancel, watch}
}

// watchJob follows a job like followJob, drawing the bar under the same rules (stderr is a
// terminal and no --json). SIGINT/SIGTERM stop the watching, not the job: the result is an
// interruptedError that names the job left running and how to cancel it.
func watchJob(cmd *cobra.Command, g *globals, c *adminrpc.Client, id string) (adminrpc.JobStatus, error) {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := followJob(ctx, c, id, !g.json && isTerminal(cmd.ErrOrStderr()), cmd.ErrOrStderr())
	if err != nil && ctx.Err() != nil && cmd.Context().Err() == nil {
		return st, interruptedError{JobID: id, hint: g.datadirHint()}
	}
	if err != nil && ctx.Err() != nil {
		return st, context.Cause(ctx)
	}
	return st, err
}

// datadirHint is the --datadir flag a printed command needs to reach the same daemon.
func (g *globals) datadirHint() string {
	if g.datadir == config.DefaultDatadir() {
		return ""
	}
	return " --datadir " + g.datadir
}
