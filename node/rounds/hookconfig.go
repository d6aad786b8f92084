package rounds

import (
	"maps"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/announce"
)

// hookRoundConfig is what an exec hook reads from {config} for round r: train_run's
// parameters, else the trainer's train section, and train.hook_config as the free-form map.
//
// TODO(integrator, issue 17): the strategies branch adds announce.Round.ProxMu; once it is
// merged, set rc.ProxMu = r.ProxMu below (one line; Model.py already adds the proximal term
// for prox_mu > 0). Should rounds later carry epochs, batch size, learning rate or a free-form
// config map, take them from r before the train section (train_run's flags still win) and
// merge r's map over train.hook_config. Until then ProxMu is 0.
func (s *Service) hookRoundConfig(r *announce.Round, p TrainParams) fl.RoundConfig {
	cfg := s.cfg.Train
	rc := fl.RoundConfig{
		RoundID:      r.ID,
		Epochs:       cfg.Epochs,
		BatchSize:    cfg.BatchSize,
		LearningRate: cfg.LearningRate,
		FeatureScale: cfg.FeatureScale,
		Config:       maps.Clone(cfg.HookConfig),
	}
	if p.Epochs > 0 {
		rc.Epochs = p.Epochs
	}
	if p.BatchSize > 0 {
		rc.BatchSize = p.BatchSize
	}
	if p.LearningRate > 0 {
		rc.LearningRate = p.LearningRate
	}
	return rc
}
