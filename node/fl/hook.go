package fl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	ErrHookStart   = errors.New("training hook could not be started")
)

// Hook runs any training command: {model}, {data}, {out} and {config} in its arguments are
// replaced by the input model path, the data path, the path the update must be written to
// (safetensors with the sample count in metadata "samples") and the path of a JSON file holding
// Round (written 0600 next to out, only when an argument names {config}).
type Hook struct {
	Command []string
	Timeout time.Duration
	Round   RoundConfig
}

// RoundConfig is the per-round configuration a hook reads from {config}: the hyperparameters
// the trainer resolved for this round (the round's own, else the trainer's train section) and
// anything the round carries in its free-form config map.
type RoundConfig struct {
	RoundID      string  `json:"round_id"`
	Epochs       int     `json:"epochs"`
	BatchSize    int     `json:"batch_size"`
	LearningRate float64 `json:"learning_rate"`
	// FeatureScale: every feature is divided by it (1: the data is used as it is).
	FeatureScale float64 `json:"feature_scale"`
	// ProxMu is FedProx's proximal coefficient μ (0: plain local SGD).
	ProxMu float64        `json:"prox_mu"`
	Config map[string]any `json:"config,omitempty"`
}

// HookConfigFile is the name of the {config} file in the hook's scratch folder.
const HookConfigFile = "config.json"

// MetricPrefix starts the metadata keys under which a hook reports evaluation metrics on its
// own held-out split, e.g. "califusion.metric.accuracy" (a decimal number, like every numeric
// metadata value the coordinator keeps as a metric).
const MetricPrefix = "califusion.metric."

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
	configPath := filepath.Join(filepath.Dir(out), HookConfigFile)
	r := strings.NewReplacer("{model}", model, "{data}", data, "{out}", out, "{config}", configPath)
	args := make([]string, len(h.Command))
	wantsConfig := false
	for i, a := range h.Command {
		args[i] = r.Replace(a)
		wantsConfig = wantsConfig || strings.Contains(a, "{config}")
	}
	if wantsConfig {
		if err := writeRoundConfig(configPath, h.Round); err != nil {
			return nil, fmt.Errorf("%w: write {config}: %v", ErrHookFailed, err)
		}
		defer os.Remove(configPath)
	}
	os.Remove(out)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	if cmd.Err != nil {
		return nil, startError(args[0], cmd.Err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var logs cappedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, startError(args[0], err)
	}
	err := cmd.Wait()
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

// writeRoundConfig writes the {config} file, readable by this user only.
func writeRoundConfig(path string, rc RoundConfig) error {
	b, err := json.MarshalIndent(rc, "", "  ")
	if err != nil {
		return err
	}
	os.Remove(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// startError names the program a hook could not start and where it was looked for.
func startError(program string, err error) error {
	resolved := program
	if !strings.ContainsRune(program, filepath.Separator) {
		if p, lerr := exec.LookPath(program); lerr == nil {
			resolved = p
		} else {
			resolved = "not found in PATH"
		}
	} else if abs, aerr := filepath.Abs(program); aerr == nil {
		resolved = abs
	}
	return fmt.Errorf("%w: program %q (resolved to %s): %v; fix train.command (relative paths are resolved against the config file's folder)", ErrHookStart, program, resolved, err)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
