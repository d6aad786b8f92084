package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/califusion/califusion/node/fl"
)

// torchPython returns an interpreter that can import torch: Debian's python3-torch installs for
// /usr/bin/python3, which may not be the python3 first on PATH.
func torchPython() string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import torch").Run() == nil {
			return py
		}
	}
	return ""
}

// TestPyTorchHook runs the shipped PyTorch trainer (e2e/model/Model.py) through the exec hook on
// the digits data: the update must pass the coordinator's checks and classify far better than the
// zero model it started from. .ci/run installs Debian's python3-torch, so CI always runs it.
func TestPyTorchHook(t *testing.T) {
	py := torchPython()
	if py == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the PyTorch hook: .ci/run installs python3-torch")
		}
		t.Skip("no python3 with torch (apt-get install python3-torch)")
	}
	dir := t.TempDir()
	base := fl.NewLogReg(64, 10)
	raw, err := base.Encode()
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "model.safetensors")
	if err := os.WriteFile(model, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	data, _ := filepath.Abs("devnet/data/digits.csv.gz")
	script, _ := filepath.Abs("model/Model.py")
	hook := fl.Hook{Command: []string{py, script, "--model", "{model}", "--data", "{data}", "--out", "{out}", "--epochs", "3"}, Timeout: 5 * time.Minute}
	res, err := hook.Run(t.Context(), model, data, filepath.Join(dir, "update.safetensors"))
	if err != nil {
		t.Fatalf("PyTorch hook: %v\n%s", err, res.Logs)
	}
	if res.Samples != 1797 {
		t.Errorf("samples = %d, want 1797", res.Samples)
	}
	if _, err := fl.Check(base, res.Update, res.Samples, 0); err != nil {
		t.Errorf("the PyTorch update fails the coordinator's checks: %v", err)
	}
	d, err := fl.LoadCSV(data, 16)
	if err != nil {
		t.Fatal(err)
	}
	acc := fl.Accuracy(res.Update, d)
	t.Logf("PyTorch update: accuracy %.3f (hook said: %s)", acc, res.Logs)
	if acc < 0.85 {
		t.Errorf("accuracy of the PyTorch update = %.3f, want ≥ 0.85", acc)
	}
	if got := res.Update.Metadata["train_accuracy"]; got == "" {
		t.Errorf("metadata = %v, want train_accuracy from Model.py", res.Update.Metadata)
	} else if v, err := strconv.ParseFloat(got, 64); err != nil || v < 0.85 {
		t.Errorf("Model.py's own train_accuracy = %q", got)
	}
}
