package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/califusion/califusion/node"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/spf13/cobra"
)

// TestExitCode checks the exit status table the README's "Exit status" section documents.
func TestExitCode(t *testing.T) {
	coded := func(code int) error { return fmt.Errorf("call: %w", apierr.Errorf(code, "x")) }
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"plain", errors.New("boom"), 1},
		{"internal", coded(apierr.Internal), 1},
		{"method not found", coded(apierr.MethodNotFound), 1},
		{"usage", usageError{errors.New("unknown command")}, 2},
		{"invalid params", coded(apierr.InvalidParams), 2},
		{"invalid request", coded(apierr.InvalidRequest), 2},
		{"parse", coded(apierr.Parse), 2},
		{"not found", coded(apierr.NotFound), 3},
		{"payment invalid", coded(apierr.PaymentInvalid), 4},
		{"payment insufficient", coded(apierr.PaymentInsufficient), 4},
		{"payment used", coded(apierr.PaymentUsed), 4},
		{"insufficient funds", coded(apierr.InsufficientFunds), 4},
		{"integrity", coded(apierr.Integrity), 5},
		{"not unlocked", coded(apierr.NotUnlocked), 6},
		{"update rejected", coded(apierr.UpdateRejected), 7},
		{"unavailable", coded(apierr.Unavailable), 8},
		{"role", coded(apierr.Role), 9},
		{"conflict", coded(apierr.Conflict), 10},
		{"interrupted", interruptedError{JobID: "ab"}, 130},
		{"canceled", fmt.Errorf("wait: %w", context.Canceled), 130},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%s: %v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestReportJSON checks that --json errors are {"error": {code, message, data}} on stdout,
// with nothing on stderr.
func TestReportJSON(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		code     int
		exit     int
		data     string
		inStderr string
	}{
		{"api", &apierr.Error{Code: apierr.NotFound, Message: "model x is not known", Data: "d"}, apierr.NotFound, 3, `"d"`, ""},
		{"usage", usageError{errors.New("unknown command")}, apierr.InvalidParams, 2, "", ""},
		{"interrupted", interruptedError{JobID: "ab12"}, apierr.Internal, 130, `{"interrupted":true,"job_id":"ab12"}`, ""},
	}
	for _, tt := range tests {
		var out, errw bytes.Buffer
		if got := report(tt.err, true, &out, &errw); got != tt.exit {
			t.Errorf("report(%s) = %d, want %d", tt.name, got, tt.exit)
		}
		var v struct {
			Error struct {
				Code    int             `json:"code"`
				Message string          `json:"message"`
				Data    json.RawMessage `json:"data"`
			} `json:"error"`
		}
		if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Error.Code != tt.code || v.Error.Message == "" || compact(v.Error.Data) != tt.data || errw.Len() != 0 {
			t.Errorf("report(%s) wrote %q / stderr %q, want an error object with code %d and data %s", tt.name, out.String(), errw.String(), tt.code, tt.data)
		}
	}
	var out, errw bytes.Buffer
	if got := report(interruptedError{JobID: "ab12"}, false, &out, &errw); got != 130 || out.Len() != 0 || !strings.Contains(errw.String(), "califusiond job cancel ab12") {
		t.Errorf("report(interrupted) = %d, stdout %q, stderr %q; want 130 and how to cancel job ab12 on stderr", got, out.String(), errw.String())
	}
}

func compact(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	json.Compact(&b, raw)
	return b.String()
}

// TestStrictCommands checks that unknown subcommands, on the root or on a group command, and
// wrong arguments are usage errors (cobra alone prints a group's help and exits 0).
func TestStrictCommands(t *testing.T) {
	newRoot := func() *cobra.Command {
		root := &cobra.Command{Use: "califusiond", SilenceUsage: true, SilenceErrors: true}
		g := &globals{}
		root.AddCommand(modelCmd(g), jobCmd(g), nodeCmd(g), versionCmd(g))
		strictCommands(root)
		return root
	}
	tests := []struct {
		args    []string
		want    int
		message string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate" for "califusiond"`},
		{[]string{"model", "frobnicate"}, 2, `unknown command "frobnicate" for "califusiond model"`},
		{[]string{"model", "fecth"}, 2, "Did you mean this?\n\tfetch"},
		{[]string{"job", "cancle"}, 2, "cancel"},
		{[]string{"model", "show"}, 2, "accepts 1 arg(s), received 0"},
		{[]string{"job", "ls", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"model"}, 0, ""},
	}
	for _, tt := range tests {
		root := newRoot()
		root.SetArgs(tt.args)
		root.SetOut(new(bytes.Buffer))
		err := root.Execute()
		if got := exitCode(err); got != tt.want || err != nil && !strings.Contains(err.Error(), tt.message) {
			t.Errorf("califusiond %s = %v (exit %d), want exit %d and %q", strings.Join(tt.args, " "), err, got, tt.want, tt.message)
		}
	}
}

// TestVersionProtocols checks that `version` names every protocol ID and topic the binary
// speaks, in text and as JSON.
func TestVersionProtocols(t *testing.T) {
	p := node.SpokenProtocols()
	want := append(append(append([]string{p.DHTPrefix}, p.Streams...), p.KexPurposes...), p.Topics...)
	for _, id := range []string{"/califusion/catalog/", "/califusion/chunks/", "/califusion/kex/", "keys/unlock/", "updates/submit/", "califusion/models/", "califusion/rounds/", "califusion/presence/"} {
		if !strings.Contains(strings.Join(want, " "), id) {
			t.Errorf("SpokenProtocols() = %+v, want an entry starting %s", p, id)
		}
	}
	for _, jsonOut := range []bool{false, true} {
		var out bytes.Buffer
		if err := printVersion(&globals{json: jsonOut}, &out); err != nil {
			t.Fatal(err)
		}
		for _, id := range append(want, "go1.") {
			if !strings.Contains(out.String(), id) {
				t.Errorf("version (json %v) = %q, want it to contain %q", jsonOut, out.String(), id)
			}
		}
		if jsonOut {
			var b node.Build
			if err := json.Unmarshal(out.Bytes(), &b); err != nil || b.Version == "" || b.GoVersion == "" || len(b.Protocols.Streams) != len(p.Streams) {
				t.Errorf("version --json = %q (%v), want a Build object", out.String(), err)
			}
		}
	}
}
