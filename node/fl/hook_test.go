package fl

import (
	"errors"
	"os"
	"path/filepath"
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
