package fl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Errors of a training hook.
var (
	ErrHookFailed  = errors.New("training hook failed")
	ErrHookTimeout = errors.New("training hook timed out")
	ErrHookOutput  = errors.New("training hook wrote no valid update")
)

// Hook runs any training command: {model}, {data} and {out} in its arguments are replaced by the
// input model path, the data path and the path the update must be written to (safetensors with
// the sample count in metadata "samples").
type Hook struct {
	Command []string
	Timeout time.Duration
}

// HookResult is what a hook run produced.
type HookResult struct {
	Update  *File
	Raw     []byte
	Samples uint64
	Logs    string // combined stdout and stderr, capped
	Elapsed time.Duration
}

// maxHookLog caps the captured output of a hook.
const maxHookLog = 64 << 10

type cappedBuffer struct{ bytes.Buffer }

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := maxHookLog - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Run executes the hook. The process group is killed when the timeout or ctx ends.
func (h Hook) Run(ctx context.Context, model, data, out string) (*HookResult, error) {
	if len(h.Command) == 0 {
		return nil, fmt.Errorf("%w: no command configured", ErrHookFailed)
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	r := strings.NewReplacer("{model}", model, "{data}", data, "{out}", out)
	args := make([]string, len(h.Command))
	for i, a := range h.Command {
		args[i] = r.Replace(a)
	}
	os.Remove(out)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var logs cappedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	start := time.Now()
	err := cmd.Run()
	res := &HookResult{Logs: logs.String(), Elapsed: time.Since(start)}
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return res, fmt.Errorf("%w after %v", ErrHookTimeout, timeout)
	case err != nil:
		return res, fmt.Errorf("%w: %v; its output ends with:\n%s", ErrHookFailed, err, tail(res.Logs, 2000))
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrHookOutput, err)
	}
	f, err := Parse(raw)
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrHookOutput, err)
	}
	n, err := strconv.ParseUint(f.Metadata["samples"], 10, 64)
	if err != nil {
		return res, fmt.Errorf("%w: metadata \"samples\" = %q is not a count", ErrHookOutput, f.Metadata["samples"])
	}
	res.Update, res.Raw, res.Samples = f, raw, n
	return res, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
