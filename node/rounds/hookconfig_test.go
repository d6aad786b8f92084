package rounds

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/califusion/califusion/node/fl"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/protocols/announce"
)

// TestHookRoundConfig: the hook's {config} holds the round's ID, train_run's parameters where
// given, else the train section's, and train.hook_config as its free-form map (a copy).
func TestHookRoundConfig(t *testing.T) {
	train := config.Default().Train
	train.FeatureScale, train.HookConfig = 16, map[string]any{"holdout": 0.2}
	s := &Service{cfg: Config{Train: train}}
	r := &announce.Round{ID: "0123456789abcdef0123456789abcdef"}
	rc := s.hookRoundConfig(r, TrainParams{Epochs: 2, LearningRate: 0.05})
	if rc.RoundID != r.ID || rc.Epochs != 2 || rc.LearningRate != 0.05 || rc.BatchSize != train.BatchSize || rc.FeatureScale != 16 || rc.ProxMu != 0 {
		t.Errorf("hook config = %+v, want round %s, epochs 2, lr 0.05, batch %d, scale 16, prox_mu 0", rc, r.ID, train.BatchSize)
	}
	rc.Config["holdout"] = 0.9
	if train.HookConfig["holdout"] != 0.2 {
		t.Error("the hook config's map aliases train.hook_config")
	}
}

// TestRoundHyperparameters: a round's epochs, batch size, learning rate and prox_mu reach the
// hook's {config} over the trainer's train section, and train_run's flags win over both.
func TestRoundHyperparameters(t *testing.T) {
	train := config.Default().Train
	s := &Service{cfg: Config{Train: train}}
	r := &announce.Round{ID: "0123456789abcdef0123456789abcdef", Epochs: 7, BatchSize: 8, LearningRate: 0.3, ProxMu: 0.01}
	rc := s.hookRoundConfig(r, TrainParams{})
	if rc.Epochs != 7 || rc.BatchSize != 8 || rc.LearningRate != 0.3 || rc.ProxMu != 0.01 {
		t.Errorf("hook config = %+v, want the round's epochs 7, batch 8, lr 0.3, prox_mu 0.01", rc)
	}
	rc = s.hookRoundConfig(r, TrainParams{Epochs: 2})
	if rc.Epochs != 2 || rc.BatchSize != 8 {
		t.Errorf("hook config with train_run's epochs = %+v, want epochs 2 (train_run) and batch 8 (the round)", rc)
	}
	for _, bad := range []announce.Round{{Epochs: -1}, {Epochs: announce.MaxEpochs + 1}, {BatchSize: -2}, {LearningRate: -0.1}, {LearningRate: 1000}} {
		if err := announce.CheckHyperparameters(bad.Epochs, bad.BatchSize, bad.LearningRate); err == nil {
			t.Errorf("CheckHyperparameters(%d, %d, %g) accepted", bad.Epochs, bad.BatchSize, bad.LearningRate)
		}
	}
}

// The report weighs the trainers' own metrics by their samples.
func TestWeightedHookMetrics(t *testing.T) {
	got := weightedHookMetrics([]updateRecord{
		{Samples: 100, Metrics: map[string]float64{"califusion.metric.accuracy": 0.9, "loss": 1}},
		{Samples: 300, Metrics: map[string]float64{"accuracy": 0.5}},
	})
	if got["accuracy"] != (100*0.9+300*0.5)/400 || got["loss"] != 1 {
		t.Errorf("weightedHookMetrics = %v, want accuracy 0.6 and loss 1 (over the one update reporting it)", got)
	}
}

// TestHookRoundConfigCarriesRoundConfig: the round's free-form config reaches the hook's
// {config} under "config" with its own keys, over train.hook_config's same-named keys; a key
// named like a round setting carries the resolved setting (named settings win); the JSON file
// the hook reads holds them.
func TestHookRoundConfigCarriesRoundConfig(t *testing.T) {
	train := config.Default().Train
	train.HookConfig = map[string]any{"holdout": 0.2, "seed": 1.0}
	s := &Service{cfg: Config{Train: train}}
	r := &announce.Round{ID: "0123456789abcdef0123456789abcdef", Epochs: 7,
		Config: map[string]any{"holdout": 0.3, "optimizer": "adamw", "augment": true, "epochs": 99.0}}
	rc := s.hookRoundConfig(r, TrainParams{})
	want := map[string]any{"holdout": 0.3, "seed": 1.0, "optimizer": "adamw", "augment": true, "epochs": 7}
	if !reflect.DeepEqual(rc.Config, want) {
		t.Errorf("hook config map = %v, want %v", rc.Config, want)
	}
	if rc.Epochs != 7 {
		t.Errorf("epochs = %d, want the round's named 7 over config's 99", rc.Epochs)
	}
	if r.Config["holdout"] != 0.3 || train.HookConfig["holdout"] != 0.2 {
		t.Error("the hook config's map aliases the round's config or train.hook_config")
	}
	// The file the hook reads.
	dir := t.TempDir()
	script := filepath.Join(dir, "hook.sh")
	out := filepath.Join(dir, "copy.json")
	os.WriteFile(script, []byte("#!/bin/sh\ncp \"$1\" "+out+"\nexit 1\n"), 0o700)
	fl.Hook{Command: []string{script, "{config}"}, Round: rc}.Run(t.Context(), filepath.Join(dir, "m"), filepath.Join(dir, "d"), filepath.Join(dir, "u"))
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Epochs int            `json:"epochs"`
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if file.Epochs != 7 || file.Config["optimizer"] != "adamw" || file.Config["augment"] != true || file.Config["holdout"] != 0.3 || file.Config["epochs"] != 7.0 {
		t.Errorf("{config} = %s, want epochs 7 and config with optimizer adamw, augment true, holdout 0.3, epochs 7", b)
	}
}
