package rounds

import (
	"maps"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/announce"
)

// hookRoundConfig is what an exec hook reads from {config} for round r: train_run's
// parameters, else the trainer's train section, train.hook_config as the free-form map, and the
// round's FedProx μ (Model.py adds the proximal term for prox_mu > 0). The round's epochs, batch
// size and learning rate override the train section; train_run's flags override both.
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
	return rc
}
