package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
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

// TestPyTorchHookRound runs a training round whose trainer trains with the shipped PyTorch
// trainer (e2e/model/Model.py) through the exec hook: the node decrypts the model for the hook,
// the hook's update passes the coordinator's checks, and the aggregate classifies the held-out
// digits far better than the zero model it started from. .ci/run installs Debian's
// python3-torch, so CI always runs it.
func TestPyTorchHookRound(t *testing.T) {
	py := torchPython()
	if py == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the PyTorch hook: .ci/run installs python3-torch")
		}
		t.Skip("no python3 with torch (apt-get install python3-torch)")
	}
	script, _ := filepath.Abs("model/Model.py")
	rn := newRoundNet(t, 1, false, func(_ int, cfg *config.Config) {
		cfg.Train.Hook, cfg.Train.Timeout.Duration = config.HookExec, 5*time.Minute
		// The shard is scaled to [0, 1] already.
		cfg.Train.Command = []string{py, script, "--model", "{model}", "--data", "{data}", "--out", "{out}", "--epochs", "5", "--scale", "1"}
	})
	ctx := t.Context()
	tr := rn.trainers[0]
	open, err := rn.coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: rn.model, MinUpdates: 1, Deadline: "5m", Rule: "fedavg", ClipNorm: 100})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
	if err != nil {
		t.Fatalf("train_run with the PyTorch hook: %v", err)
	}
	if res.Samples != uint64(len(rn.shards[0].X)) {
		t.Errorf("samples = %d, want the shard's %d rows (read from the hook's metadata)", res.Samples, len(rn.shards[0].X))
	}
	if _, err := tr.Client().UpdateSubmit(ctx, open.RoundID, res.UpdateID); err != nil {
		t.Fatalf("update_submit of the PyTorch update: %v", err)
	}
	closed, err := rn.coord.Client().RoundClose(ctx, open.RoundID)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := rn.coord.Client().RoundReport(ctx, open.RoundID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Participants) != 1 || !rep.Participants[0].Accepted {
		t.Fatalf("report participants = %+v, want the PyTorch update accepted", rep.Participants)
	}
	if got, ok := rep.Participants[0].Metrics["train_accuracy"]; !ok || got < 0.8 {
		t.Errorf("participant metrics = %v, want Model.py's train_accuracy", rep.Participants[0].Metrics)
	}
	path := filepath.Join(t.TempDir(), "aggregate.safetensors")
	if _, err := rn.coord.Client().ModelExport(ctx, closed.ModelID, path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	agg, err := fl.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := devnet.LoadDigits()
	_, test := all.Split(1, 0.2)
	acc := fl.Accuracy(agg, test)
	t.Logf("PyTorch round: held-out accuracy %.3f", acc)
	if acc < 0.8 {
		t.Errorf("held-out accuracy of the PyTorch round's aggregate = %.3f, want ≥ 0.80", acc)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(tr.Datadir, "train", "*")); len(leftovers) != 0 {
		t.Errorf("the decrypted model or hook output stayed on disk: %v", leftovers)
	}
}
