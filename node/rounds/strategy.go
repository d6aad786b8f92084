package rounds

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
)

// A round's strategy is applied where its aggregate becomes the next version (aggregation.go for
// plain rounds, secure.go for secure ones): the rule's aggregate (or base + the mean masked
// delta) is the pseudo-gradient's end point, and the strategy's server step turns it into the
// published version.
//
// The optimiser's state (fedavgm's momentum, fedadam's moments) belongs to the version it
// produced: it is kept by the coordinator that aggregated, in RoundsDir/optstate/<new version's
// ModelID>.safetensors (float32 tensors "m/<name>", "v/<name>"), and read back by the next
// round opened on that version. The model file stays the model (trainers and exports never see
// the state), and rounds on an older version never inherit a later branch's momentum. Once a
// version's state is written its base's is removed, so a second round on the same base (a
// branch) starts from zero state too. What this trades away: a round aggregated by another coordinator of the lineage (failover, or rounds
// spread over coordinators) starts that coordinator's state from zero, which for momentum means
// one round of plain averaging scaled by η; the report says whether the state was carried
// (metric opt_state_carried).

// optStateDir is the folder (under RoundsDir) of the optimiser states.
const optStateDir = "optstate"

// openStrategy checks a round_open's strategy and writes it into r: a named strategy other than
// plain fedavg gets its defaults filled in, so the round says what it runs.
func openStrategy(r *announce.Round, p OpenParams) error {
	o := fl.ServerOptimizer{Strategy: p.Strategy, LR: p.ServerLR, Beta1: p.Momentum, Beta2: p.Beta2, Tau: p.Tau}
	if err := o.Check(); err != nil {
		return apierr.Errorf(apierr.InvalidParams, "%v", err)
	}
	if math.IsNaN(p.ProxMu) || p.ProxMu < 0 || p.ProxMu > fl.MaxProxMu {
		return apierr.Errorf(apierr.InvalidParams, "prox_mu %g must be in [0, %g] (0: no proximal term)", p.ProxMu, fl.MaxProxMu)
	}
	if !o.Identity() {
		o = o.WithDefaults()
	}
	r.Strategy, r.ServerLR, r.Momentum, r.Beta2, r.Tau, r.ProxMu = o.Strategy, o.LR, o.Beta1, o.Beta2, o.Tau, p.ProxMu
	if err := announce.CheckHyperparameters(p.Epochs, p.BatchSize, p.LearningRate); err != nil {
		return apierr.Errorf(apierr.InvalidParams, "%v", err)
	}
	r.Epochs, r.BatchSize, r.LearningRate = p.Epochs, p.BatchSize, p.LearningRate
	if err := announce.CheckConfig(p.Config); err != nil {
		return apierr.Errorf(apierr.InvalidParams, "%v", err)
	}
	if len(p.Config) > 0 {
		r.Config = maps.Clone(p.Config)
	}
	return nil
}

// optStatePath is where the optimiser state after version id is kept.
func (s *Service) optStatePath(id []byte) string {
	return filepath.Join(s.cfg.RoundsDir, optStateDir, fmt.Sprintf("%x.safetensors", id))
}

// serverStep applies round r's strategy to its aggregate of base: it returns the version to
// publish and the state to keep after it (nil for plain fedavg), and records in metrics whether a
// previous state was carried. A plain fedavg round publishes its aggregate unchanged.
func (s *Service) serverStep(r *announce.Round, base, aggregate *fl.File, metrics map[string]float64) (*fl.File, *fl.OptState, error) {
	o := r.Optimizer()
	if o.Identity() {
		return aggregate, nil, nil
	}
	prev, err := s.loadOptState(r.Model, base)
	if err != nil {
		s.log.Warn("the optimiser state of the base version is unreadable: starting from zero", "round", r.ID, "err", err)
	}
	next, st, err := o.Step(base, aggregate, prev)
	if err != nil {
		return nil, nil, fmt.Errorf("the %s server step: %w", o.Strategy, err)
	}
	carried := 0.0
	if prev != nil && prev.Strategy == o.WithDefaults().Strategy {
		carried = 1
	}
	if st != nil {
		metrics["opt_state_carried"] = carried
	}
	return next, st, nil
}

// loadOptState reads the state left after version id (nil if there is none).
func (s *Service) loadOptState(id []byte, model *fl.File) (*fl.OptState, error) {
	raw, err := os.ReadFile(s.optStatePath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := fl.Parse(raw)
	if err != nil {
		return nil, err
	}
	return fl.StateOf(f, model)
}

// keepOptState writes the state after version id, built on base's, and removes base's: a
// coordinator keeps one state per lineage tip it aggregated (2 × the model at most, for
// fedadam), not one per version. A failure is logged (the next round on id then starts from zero
// state), since the version is already published.
func (s *Service) keepOptState(round string, base, id []byte, model *fl.File, st *fl.OptState) {
	if st == nil {
		return
	}
	if _, err := writeSafetensors(s.optStatePath(id), st.StateFile(model)); err != nil {
		s.log.Warn("keep the optimiser state: the next round on this version starts from zero", "round", round, "err", err)
		return
	}
	if err := os.Remove(s.optStatePath(base)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("remove the base version's optimiser state", "round", round, "err", err)
	}
}
