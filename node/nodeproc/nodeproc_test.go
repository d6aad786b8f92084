package nodeproc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeDaemon writes a shell script that stands in for califusiond: `init` succeeds, and `run`
// runs body.
func fakeDaemon(t *testing.T, body string) string {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	path := filepath.Join(t.TempDir(), "califusiond")
	script := "#!/bin/sh\ncase \"$1\" in init) exit 0;; esac\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStartFailsWhenTheProcessExits(t *testing.T) {
	c := New(fakeDaemon(t, "echo broken config >&2; exit 3"), t.TempDir())
	n, err := c.Init(t.Context(), "a", []string{"trainer"})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "broken config") {
		t.Fatalf("Start() = %v, want an early-exit error quoting the log", err)
	}
	if n.Running() {
		t.Errorf("Running() = true after the process exited, want false")
	}
	if got := c.Nodes(); len(got) != 1 || got[0] != n {
		t.Errorf("Nodes() = %v, want [%s]", got, n.Name)
	}
}

func TestInitReportsFailure(t *testing.T) {
	c := New(fakeDaemon(t, "exit 0"), t.TempDir())
	c.Bin = c.Bin + ".missing"
	if _, err := c.Init(t.Context(), "a", nil); err == nil {
		t.Fatal("Init() with a missing binary = nil error, want one")
	}
	if len(c.Nodes()) != 0 {
		t.Errorf("Nodes() = %d nodes after a failed Init, want 0", len(c.Nodes()))
	}
}

func TestKillEndsAHungProcess(t *testing.T) {
	c := New(fakeDaemon(t, "exec sleep 60"), t.TempDir())
	n, err := c.Init(t.Context(), "hung", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := n.Start(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start() = %v, want %v (it never writes rpc.addr)", err, context.DeadlineExceeded)
	}
	if !n.Running() || n.PID() == 0 {
		t.Fatalf("Running(), PID() = %v, %d after a timed-out Start, want a live process", n.Running(), n.PID())
	}
	if err := n.Kill(); err != nil {
		t.Fatalf("Kill() = %v, want nil", err)
	}
	if n.Running() {
		t.Errorf("Running() = true after Kill, want false")
	}
	if err := n.Stop(); err != nil {
		t.Errorf("Stop() of a stopped node = %v, want nil", err)
	}
}

func TestWaitFor(t *testing.T) {
	calls := 0
	err := WaitFor(t.Context(), func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("WaitFor() = %v after %d calls, want nil after 3", err, calls)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Millisecond)
	defer cancel()
	err = WaitFor(ctx, func() error { return errors.New("never") })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "never") {
		t.Errorf("WaitFor(never) = %v, want %v carrying the last error", err, context.DeadlineExceeded)
	}
}
