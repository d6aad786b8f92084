package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/node/rounds"
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
		// The shard is scaled to [0, 1] already, and Model.py no longer rescales by default.
		cfg.Train.Command = []string{py, script, "--model", "{model}", "--data", "{data}", "--out", "{out}", "--epochs", "5"}
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
	// Model.py holds 10% of the rows out by default (scored, not trained on).
	if n := len(rn.shards[0].X); res.Samples != uint64(n-n/10) {
		t.Errorf("samples = %d, want the shard's %d rows less 10%% held out (read from the hook's metadata)", res.Samples, n)
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

// TestPyTorchHookCampaign runs three rounds back to back, each opened on the previous round's
// version, whose two trainers train with e2e/model/Model.py through the exec hook. The command
// names the script relative to the trainer's config file ("./hooks/Model.py", while the daemon
// runs elsewhere) and passes no hyperparameters: Model.py takes epochs, learning rate, batch size
// and feature scale from the round's {config}. Every round's aggregate scores strictly better on
// a held-out split no trainer saw than the version it started from, and every update reports
// Model.py's accuracy on its own held-out rows (califusion.metric.accuracy).
func TestPyTorchHookCampaign(t *testing.T) {
	py := torchPython()
	if py == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the PyTorch hook: .ci/run installs python3-torch")
		}
		t.Skip("no python3 with torch (apt-get install python3-torch)")
	}
	script, err := os.ReadFile("model/Model.py")
	if err != nil {
		t.Fatal(err)
	}
	rn := newRoundNet(t, 2, false, func(i int, cfg *config.Config) {
		cfg.Train.Hook, cfg.Train.Timeout.Duration = config.HookExec, 5*time.Minute
		// One epoch at a small rate per round, so that each round has room to improve; the
		// shards are in [0, 1] already (feature_scale 1 reaches the hook through {config}).
		cfg.Train.Epochs, cfg.Train.LearningRate, cfg.Train.BatchSize, cfg.Train.FeatureScale = 1, 0.1, 32, 1
		cfg.Train.HookConfig = map[string]any{"holdout": 0.1}
		cfg.Train.Command = []string{py, "./hooks/Model.py", "--model", "{model}", "--data", "{data}", "--out", "{out}", "--config", "{config}"}
	})
	for _, tr := range rn.trainers {
		dir := filepath.Join(tr.Datadir, "hooks")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "Model.py"), script, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	all, _ := devnet.LoadDigits()
	_, test := all.Split(1, 0.2)
	model, prev := rn.model, fl.Accuracy(rn.base, test)
	t.Logf("round 0 (the zero model): held-out accuracy %.3f", prev)
	for round := 1; round <= 3; round++ {
		open, err := rn.coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: model, MinUpdates: 2, Deadline: "5m", Rule: "fedavg", ClipNorm: 100})
		if err != nil {
			t.Fatal(err)
		}
		for i, tr := range rn.trainers {
			res, err := tr.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
			if err != nil {
				t.Fatalf("round %d: %s: train_run with the PyTorch hook: %v", round, tr.Name, err)
			}
			// Model.py trains on all rows but its 10% held out.
			if n := len(rn.shards[i].X); res.Samples != uint64(n-n/10) {
				t.Errorf("round %d: %s: samples = %d, want %d (the shard's %d rows less 10%% held out)", round, tr.Name, res.Samples, n-n/10, n)
			}
			// The hook's output (kept beside the update) shows it trained with {config}'s
			// settings, not Model.py's defaults (5 epochs, lr 0.5).
			logs, err := os.ReadFile(filepath.Join(tr.Datadir, rounds.UpdatesDir, res.UpdateID+".log"))
			if want := "epochs 1, batch 32, lr 0.1, scale 1.0, prox_mu 0.0"; err != nil || !strings.Contains(string(logs), want) {
				t.Errorf("round %d: %s: hook output %q (%v), want it to say %q", round, tr.Name, logs, err, want)
			}
			if _, err := tr.Client().UpdateSubmit(ctx, open.RoundID, res.UpdateID); err != nil {
				t.Fatalf("round %d: %s: update_submit: %v", round, tr.Name, err)
			}
		}
		closed, err := rn.coord.Client().RoundClose(ctx, open.RoundID)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := rn.coord.Client().RoundReport(ctx, open.RoundID)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Participants) != 2 {
			t.Fatalf("round %d: participants = %+v, want both PyTorch updates", round, rep.Participants)
		}
		var own []float64
		for _, p := range rep.Participants {
			got, ok := p.Metrics[fl.MetricPrefix+"accuracy"]
			if !p.Accepted || !ok || got <= 0 || got > 1 {
				t.Errorf("round %d: participant %+v, want accepted with %saccuracy in (0, 1]", round, p, fl.MetricPrefix)
			}
			own = append(own, got)
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
		acc := fl.Accuracy(agg, test)
		t.Logf("round %d: held-out accuracy %.3f (trainers' own held-out rows: %.3f)", round, acc, own)
		if !(acc > prev) {
			t.Errorf("round %d: held-out accuracy %.3f, want strictly above the previous version's %.3f", round, acc, prev)
		}
		model, prev = closed.ModelID, acc
	}
	for _, tr := range rn.trainers {
		if leftovers, _ := filepath.Glob(filepath.Join(tr.Datadir, "train", "*")); len(leftovers) != 0 {
			t.Errorf("%s: the decrypted model, {config} or hook output stayed on disk: %v", tr.Name, leftovers)
		}
	}
}
