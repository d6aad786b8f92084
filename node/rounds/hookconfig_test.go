package rounds

import (
	"testing"

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
