package fl

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestHook(t *testing.T) {
	dir := t.TempDir()
	good := NewLogReg(2, 2)
	good.Metadata["samples"] = "42"
	goodBytes, _ := good.Encode()
	src := filepath.Join(dir, "update.safetensors")
	os.WriteFile(src, goodBytes, 0o600)
	noSamples, _ := NewLogReg(2, 2).Encode()
	bad := filepath.Join(dir, "nosamples.safetensors")
	os.WriteFile(bad, noSamples, 0o600)
	out := filepath.Join(dir, "out.safetensors")
	tests := []struct {
		name string
		cmd  []string
		want error
	}{
		{"writes an update", []string{"sh", "-c", "echo training {model} on {data}; cp " + src + " {out}"}, nil},
		{"crashes", []string{"sh", "-c", "echo boom >&2; exit 3"}, ErrHookFailed},
		{"hangs", []string{"sh", "-c", "sleep 30"}, ErrHookTimeout},
		{"writes garbage", []string{"sh", "-c", "echo garbage > {out}"}, ErrHookOutput},
		{"writes nothing", []string{"true"}, ErrHookOutput},
		{"no sample count", []string{"sh", "-c", "cp " + bad + " {out}"}, ErrHookOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Hook{Command: tt.cmd, Timeout: 500 * time.Millisecond}.Run(t.Context(), "/m", "/d", out)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
			if tt.want == nil && (res.Samples != 42 || res.Logs != "training /m on /d\n") {
				t.Errorf("Run = samples %d, logs %q; want 42 and the hook's output", res.Samples, res.Logs)
			}
		})
	}
}

// TestHookConfigFile: a command naming {config} gets the path of a 0600 JSON file in the update's
// folder holding the round's configuration, and the file is gone when the hook ends.
func TestHookConfigFile(t *testing.T) {
	dir := t.TempDir()
	good := NewLogReg(2, 2)
	good.Metadata["samples"] = "7"
	raw, _ := good.Encode()
	src := filepath.Join(dir, "src.safetensors")
	os.WriteFile(src, raw, 0o600)
	out := filepath.Join(dir, "scratch", "update.safetensors")
	os.MkdirAll(filepath.Dir(out), 0o700)
	seen := filepath.Join(dir, "seen.json")
	rc := RoundConfig{RoundID: "r1", Epochs: 3, BatchSize: 16, LearningRate: 0.25, FeatureScale: 1, ProxMu: 0.01, Config: map[string]any{"holdout": 0.2}}
	cmd := []string{"sh", "-c", `stat -c %a "$1" > "$2.mode"; cp "$1" "$2"; cp ` + src + ` "$3"`, "sh", "{config}", seen, "{out}"}
	if _, err := (Hook{Command: cmd, Timeout: 5 * time.Second, Round: rc}).Run(t.Context(), "/m", "/d", out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(seen)
	if err != nil {
		t.Fatalf("the hook did not get a {config} file: %v", err)
	}
	var got RoundConfig
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("{config} is not JSON: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(got, rc) {
		t.Errorf("{config} = %+v, want %+v", got, rc)
	}
	for _, key := range []string{`"round_id"`, `"epochs"`, `"batch_size"`, `"learning_rate"`, `"feature_scale"`, `"prox_mu"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("{config} lacks %s:\n%s", key, b)
		}
	}
	if mode, _ := os.ReadFile(seen + ".mode"); strings.TrimSpace(string(mode)) != "600" {
		t.Errorf("{config} mode = %q, want 600", mode)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(out), HookConfigFile)); !os.IsNotExist(err) {
		t.Errorf("{config} left behind after the hook: %v", err)
	}
}

// TestHookStartError: a program that does not exist is one ErrHookStart naming it and where it
// was looked for.
func TestHookStartError(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.safetensors")
	for _, tt := range []struct{ program, want string }{
		{"/nonexistent/python3", `"/nonexistent/python3" (resolved to /nonexistent/python3)`},
		{"no-such-interpreter-17", "not found in PATH"},
	} {
		_, err := Hook{Command: []string{tt.program, "{model}"}, Timeout: time.Second}.Run(t.Context(), "/m", "/d", out)
		if !errors.Is(err, ErrHookStart) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Run(%s) = %v, want ErrHookStart containing %q", tt.program, err, tt.want)
		}
	}
}
