package rounds

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
)

// A round's coordinator chooses its epochs (up to announce.MaxEpochs) and the trainer spends
// its CPU on them: train.max_round_epochs caps what a round may ask, and train.timeout bounds a
// run of the built-in trainer as it bounds an exec hook.

// EpochCap is the Data of train_run's refusal of a round that asks for more local epochs than
// train.max_round_epochs allows (node/autotrain tells it from other failures by it).
type EpochCap struct {
	Round  string `json:"round_id"`
	Epochs int    `json:"epochs"`           // the round's
	Cap    int    `json:"max_round_epochs"` // the trainer's
}

// checkEpochCap refuses a round whose epochs exceed train.max_round_epochs (0: no cap), unless
// train_run names its own epochs (the operator's choice, not the coordinator's).
func (s *Service) checkEpochCap(r *announce.Round, p TrainParams) error {
	limit := s.cfg.Train.MaxRoundEpochs
	if limit <= 0 || p.Epochs > 0 || r.Epochs <= limit {
		return nil
	}
	return &apierr.Error{Code: apierr.InvalidParams,
		Message: fmt.Sprintf("round %s asks for %d local epochs, more than train.max_round_epochs (%d) allows: raise train.max_round_epochs in the config (0: no cap) or give train_run its own epochs", r.ID, r.Epochs, limit),
		Data:    EpochCap{Round: r.ID, Epochs: r.Epochs, Cap: limit}}
}

// IsEpochCap reports whether err is checkEpochCap's refusal.
func IsEpochCap(err error) bool {
	var ae *apierr.Error
	if !errors.As(err, &ae) {
		return false
	}
	_, ok := ae.Data.(EpochCap)
	return ok
}

// builtinTimeout is the built-in trainer's time limit: train.timeout, as for an exec hook
// (fl.Hook's default when unset).
func (s *Service) builtinTimeout() time.Duration {
	if d := s.cfg.Train.Timeout.Duration; d > 0 {
		return d
	}
	return 10 * time.Minute
}

// builtinContext bounds a built-in trainer's run by train.timeout.
func (s *Service) builtinContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.builtinTimeout())
}
