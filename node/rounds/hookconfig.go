package rounds

import (
	"maps"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/announce"
)

// hookRoundConfig is what an exec hook reads from {config} for round r: train_run's
// parameters, else the trainer's train section, the free-form "config" map, and the round's
// FedProx μ (Model.py adds the proximal term for prox_mu > 0). The round's epochs, batch size
// and learning rate override the train section; train_run's flags override both.
//
// The "config" map is train.hook_config with the round's own config (announce.Round.Config)
// laid over it: a key both carry takes the round's value. The named settings win over
// same-named config keys: a config key named like one (epochs, batch_size, learning_rate,
// feature_scale, prox_mu, round_id) carries the value the trainer resolved for it, so a hook
// reading either place reads the same number, and the coordinator's config cannot change
// them behind the named round settings.
func (s *Service) hookRoundConfig(r *announce.Round, p TrainParams) fl.RoundConfig {
	cfg := s.cfg.Train
	rc := fl.RoundConfig{
		RoundID:      r.ID,
		Epochs:       cfg.Epochs,
		BatchSize:    cfg.BatchSize,
		LearningRate: cfg.LearningRate,
		FeatureScale: cfg.FeatureScale,
		Config:       maps.Clone(cfg.HookConfig),
		ProxMu:       r.ProxMu,
	}
	roundHyperparameters(r, &rc.Epochs, &rc.BatchSize, &rc.LearningRate)
	if p.Epochs > 0 {
		rc.Epochs = p.Epochs
	}
	if p.BatchSize > 0 {
		rc.BatchSize = p.BatchSize
	}
	if p.LearningRate > 0 {
		rc.LearningRate = p.LearningRate
	}
	if len(r.Config) > 0 {
		if rc.Config == nil {
			rc.Config = make(map[string]any, len(r.Config))
		}
		maps.Copy(rc.Config, r.Config)
	}
	named := map[string]any{"round_id": rc.RoundID, "epochs": rc.Epochs, "batch_size": rc.BatchSize,
		"learning_rate": rc.LearningRate, "feature_scale": rc.FeatureScale, "prox_mu": rc.ProxMu}
	for k, v := range named {
		if _, ok := rc.Config[k]; ok {
			rc.Config[k] = v
		}
	}
	return rc
}
