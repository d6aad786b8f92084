package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/califusion/califusion/protocols/apierr"
	"github.com/spf13/cobra"
)

// Exit statuses of every verb, with and without --json (README "Exit status"): scripts tell
// error classes apart without parsing messages.
const (
	exitOK             = 0
	exitOther          = 1 // internal or unclassified error
	exitUsage          = 2 // unknown command, bad flags or arguments, invalid params
	exitNotFound       = 3
	exitPayment        = 4 // payment_invalid, payment_insufficient, payment_used, insufficient_funds
	exitIntegrity      = 5
	exitNotUnlocked    = 6
	exitUpdateRejected = 7
	exitUnavailable    = 8 // the daemon, a provider, the ledger or Calimero cannot be reached
	exitRole           = 9
	exitConflict       = 10
	exitInterrupted    = 130 // SIGINT/SIGTERM (128 + SIGINT, as shells report it)
)

// exitByCode maps an API error code to its exit status; codes not listed exit with exitOther.
var exitByCode = map[int]int{
	apierr.Parse:               exitUsage,
	apierr.InvalidRequest:      exitUsage,
	apierr.InvalidParams:       exitUsage,
	apierr.NotFound:            exitNotFound,
	apierr.PaymentInvalid:      exitPayment,
	apierr.PaymentInsufficient: exitPayment,
	apierr.PaymentUsed:         exitPayment,
	apierr.InsufficientFunds:   exitPayment,
	apierr.Integrity:           exitIntegrity,
	apierr.NotUnlocked:         exitNotUnlocked,
	apierr.UpdateRejected:      exitUpdateRejected,
	apierr.Unavailable:         exitUnavailable,
	apierr.Role:                exitRole,
	apierr.Conflict:            exitConflict,
}

// usageError is a command line the CLI cannot run: an unknown command, a bad flag or argument.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// interruptedError is a verb stopped by SIGINT/SIGTERM; JobID names the job it leaves running.
type interruptedError struct{ JobID, hint string }

func (e interruptedError) Error() string {
	if e.JobID == "" {
		return "interrupted"
	}
	return fmt.Sprintf("interrupted: job %s keeps running in the daemon; follow it with `califusiond%s job watch %s` or cancel it with `califusiond%s job cancel %s`", e.JobID, e.hint, e.JobID, e.hint, e.JobID)
}

// asAPIError is err as the error object --json prints: an API error as the daemon sent it, a
// CLI error with the code of its class (-32602 usage, -32603 other; an interruption is -32603
// with data.interrupted).
func asAPIError(err error) *apierr.Error {
	var ae *apierr.Error
	var ue usageError
	var ie interruptedError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &ue):
		return &apierr.Error{Code: apierr.InvalidParams, Message: err.Error()}
	case errors.As(err, &ie):
		data := map[string]any{"interrupted": true}
		if ie.JobID != "" {
			data["job_id"] = ie.JobID
		}
		return &apierr.Error{Code: apierr.Internal, Message: err.Error(), Data: data}
	}
	return &apierr.Error{Code: apierr.Internal, Message: err.Error()}
}

// exitCode is the exit status for err (nil: 0).
func exitCode(err error) int {
	var ue usageError
	var ie interruptedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ie):
		return exitInterrupted
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	if code := apierr.CodeOf(err); code != 0 {
		if s, ok := exitByCode[code]; ok {
			return s
		}
	}
	return exitOther
}

// report writes err where a script or a person looks for it and returns the exit status: with
// --json the error object on stdout as {"error": {code, message, data}}, else one line on stderr.
func report(err error, jsonOut bool, stdout, stderr io.Writer) int {
	code := exitCode(err)
	if err == nil {
		return code
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Error *apierr.Error `json:"error"`
		}{asAPIError(err)})
		return code
	}
	if code == exitInterrupted {
		fmt.Fprintln(stderr, err)
	} else {
		fmt.Fprintln(stderr, "error:", err)
	}
	return code
}

// strictCommands makes every command of the tree refuse what it cannot run with a usageError: a
// group command given an unknown subcommand (cobra would print its help and exit 0), wrong
// arguments, bad flags.
func strictCommands(root *cobra.Command) {
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath())}
	})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		switch {
		case c.HasSubCommands():
			c.Args = unknownSubcommand
			if !c.Runnable() {
				c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
			}
		case c.Args != nil:
			check := c.Args
			c.Args = func(c *cobra.Command, args []string) error {
				if err := check(c, args); err != nil {
					return usageError{fmt.Errorf("%s: %w\nusage: %s", c.CommandPath(), err, c.UseLine())}
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// unknownSubcommand accepts no arguments on a group command: the first is an unknown
// subcommand, refused with cobra's suggestions.
func unknownSubcommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2
	}
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
	}
	return usageError{fmt.Errorf("%s\nRun '%s --help' for usage", msg, c.CommandPath())}
}
