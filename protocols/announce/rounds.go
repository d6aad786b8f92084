package announce

import (
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/node/secagg"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/peer"
)

// RoundsTopic carries training rounds: a coordinator announces a round when it opens, as its
// accepted updates grow, and when it ends (with the new model version, or why it failed).
const RoundsTopic = "califusion/rounds/1"

// MaxRoundSize caps an encoded Round: its config (at most MaxConfigBytes) and the rest; with it a
// round still fits in an updates Receipt (16 KiB).
const MaxRoundSize = 8 << 10

// Round states (shared/API.md round_list).
const (
	RoundOpen        = "open"
	RoundAggregating = "aggregating"
	RoundDone        = "done"
	RoundFailed      = "failed"
)

// Sample ceilings: a trainer's update may claim at most a round's MaxSamples samples (its FedAvg
// weight is capped there too); DefaultMaxSamples applies when a round names none.
const (
	DefaultMaxSamples = 100000
	MaxSampleCeiling  = 1 << 40
)

// Clip modes: an update whose delta norm exceeds clip_norm is rejected, or scaled down to it.
const (
	ClipReject = "reject"
	ClipScale  = "scale"
)

// Round is a training round as its coordinator announces it. The pubsub message's author must be
// the Coordinator (gossipsub signs every message), so only a round's coordinator can announce it;
// receivers keep the snapshot with the highest Seq.
type Round struct {
	ID          string  `cbor:"1,keyasint"`            // 32 lowercase hex characters
	Model       []byte  `cbor:"2,keyasint"`            // base ModelID
	Coordinator string  `cbor:"3,keyasint"`            // peer ID of the coordinator
	MinUpdates  int     `cbor:"4,keyasint"`            // accepted updates needed to aggregate
	Deadline    int64   `cbor:"5,keyasint"`            // unix milliseconds
	Rule        string  `cbor:"6,keyasint"`            // an fl.Rules() name: fedavg | median | trimmed_mean
	ClipNorm    float64 `cbor:"7,keyasint,omitempty"`  // 0: no bound
	ClipMode    string  `cbor:"8,keyasint,omitempty"`  // reject (default) | scale
	State       string  `cbor:"9,keyasint"`            // open | aggregating | done | failed
	Updates     int     `cbor:"10,keyasint,omitempty"` // accepted so far
	Rejected    int     `cbor:"11,keyasint,omitempty"`
	NewModel    []byte  `cbor:"12,keyasint,omitempty"` // the aggregate's ModelID once done
	Error       string  `cbor:"13,keyasint,omitempty"` // why it failed
	Seq         uint64  `cbor:"14,keyasint"`
	OpenedAt    int64   `cbor:"15,keyasint"` // unix milliseconds
	// MaxSamples is the most samples one trainer's update may claim (0: DefaultMaxSamples);
	// a claim above it is refused before the update is read, and it caps FedAvg weights.
	MaxSamples uint64 `cbor:"16,keyasint,omitempty"`
	// Secure rounds take no update in the clear: trainers run SecAgg+ with the coordinator
	// (protocols/updates, updates/secagg/1) under SecAgg's parameters, and the coordinator
	// learns only the weighted sum of their deltas.
	Secure bool           `cbor:"17,keyasint,omitempty"`
	SecAgg *secagg.Params `cbor:"18,keyasint,omitempty"`
	// Reopens names the round this one re-opens: another coordinator of the lineage opened it
	// with the same parameters after the first one's coordinator went silent. Trainers submit the
	// update they trained for that round here.
	Reopens string `cbor:"19,keyasint,omitempty"`
	// The round's strategy (fl.ServerOptimizer): the server step applied to the rule's
	// aggregate ("" is fedavg) with its parameters (0: the strategy's default), and FedProx's
	// μ, which trainers running the built-in trainer add to their loss (0: none).
	Strategy string  `cbor:"20,keyasint,omitempty"` // fedavg | fedavgm | fedadam
	ServerLR float64 `cbor:"21,keyasint,omitempty"` // η
	Momentum float64 `cbor:"22,keyasint,omitempty"` // fedavgm's β, fedadam's β1
	Beta2    float64 `cbor:"23,keyasint,omitempty"`
	Tau      float64 `cbor:"24,keyasint,omitempty"`
	ProxMu   float64 `cbor:"25,keyasint,omitempty"`
	// The trainers' hyperparameters for the round (0: each trainer's own train settings): the
	// built-in trainer uses them and an exec hook reads them from {config}.
	Epochs       int     `cbor:"26,keyasint,omitempty"`
	BatchSize    int     `cbor:"27,keyasint,omitempty"`
	LearningRate float64 `cbor:"28,keyasint,omitempty"`
	// Campaign says the round is one of a campaign's (node/campaign) and carries what another
	// coordinator of the lineage needs to go on with the campaign if this one goes silent.
	Campaign *CampaignTag `cbor:"29,keyasint,omitempty"`
	// Config is the round's free-form configuration (CheckConfig: at most MaxConfigKeys
	// scalar entries): an exec hook reads it under "config" in {config}; the built-in trainer
	// ignores it.
	Config map[string]any `cbor:"30,keyasint,omitempty"`
}

// Limits on a round's hyperparameters.
const (
	MaxEpochs       = 1000
	MaxBatchSize    = 1 << 16
	MaxLearningRate = 100
)

// Optimizer is the round's server step.
func (r *Round) Optimizer() fl.ServerOptimizer {
	return fl.ServerOptimizer{Strategy: r.Strategy, LR: r.ServerLR, Beta1: r.Momentum, Beta2: r.Beta2, Tau: r.Tau}
}

// checkStrategy validates the round's strategy fields.
func (r *Round) checkStrategy() error {
	if err := r.Optimizer().Check(); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if math.IsNaN(r.ProxMu) || r.ProxMu < 0 || r.ProxMu > fl.MaxProxMu {
		return fmt.Errorf("%w: prox_mu %g must be in [0, %g]", ErrMalformed, r.ProxMu, fl.MaxProxMu)
	}
	return CheckHyperparameters(r.Epochs, r.BatchSize, r.LearningRate)
}

// CheckHyperparameters validates a round's trainer hyperparameters (0: unset).
func CheckHyperparameters(epochs, batch int, lr float64) error {
	switch {
	case epochs < 0 || epochs > MaxEpochs:
		return fmt.Errorf("%w: epochs %d must be 0 (the trainer's own) to %d", ErrMalformed, epochs, MaxEpochs)
	case batch < 0 || batch > MaxBatchSize:
		return fmt.Errorf("%w: batch_size %d must be 0 (the trainer's own) to %d", ErrMalformed, batch, MaxBatchSize)
	case math.IsNaN(lr) || lr < 0 || lr > MaxLearningRate:
		return fmt.Errorf("%w: learning_rate %g must be 0 (the trainer's own) to %d", ErrMalformed, lr, MaxLearningRate)
	}
	return nil
}

// SampleCeiling returns the most samples one update of the round may claim.
func (r *Round) SampleCeiling() uint64 {
	if r.MaxSamples == 0 {
		return DefaultMaxSamples
	}
	return r.MaxSamples
}

var roundIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Check validates a round's fields.
func (r *Round) Check() error {
	switch {
	case !roundIDPattern.MatchString(r.ID):
		return fmt.Errorf("%w: round ID must be 32 lowercase hex characters", ErrMalformed)
	case len(r.Model) != 32:
		return fmt.Errorf("%w: round needs a 32-byte model ID", ErrMalformed)
	case r.MinUpdates < 1 || r.MinUpdates > 10000:
		return fmt.Errorf("%w: min_updates %d must be 1..10000", ErrMalformed, r.MinUpdates)
	case r.Deadline <= 0 || r.OpenedAt <= 0:
		return fmt.Errorf("%w: round needs a deadline and an opening time", ErrMalformed)
	case fl.ValidRule(r.Rule) != nil:
		return fmt.Errorf("%w: rule %q", ErrMalformed, r.Rule)
	case r.ClipNorm < 0 || math.IsNaN(r.ClipNorm) || math.IsInf(r.ClipNorm, 0):
		return fmt.Errorf("%w: clip_norm must be a finite number ≥ 0", ErrMalformed)
	case r.ClipMode != "" && r.ClipMode != ClipReject && r.ClipMode != ClipScale:
		return fmt.Errorf("%w: clip mode %q", ErrMalformed, r.ClipMode)
	case r.MaxSamples > MaxSampleCeiling:
		return fmt.Errorf("%w: max_samples %d exceeds %d", ErrMalformed, r.MaxSamples, uint64(MaxSampleCeiling))
	case r.Reopens != "" && (!roundIDPattern.MatchString(r.Reopens) || r.Reopens == r.ID):
		return fmt.Errorf("%w: reopens must be another round's ID", ErrMalformed)
	case r.NewModel != nil && len(r.NewModel) != 32:
		return fmt.Errorf("%w: new model must be a 32-byte model ID", ErrMalformed)
	case r.Updates < 0 || r.Rejected < 0 || len(r.Error) > 1024:
		return fmt.Errorf("%w: round counters or error out of range", ErrMalformed)
	case r.Secure != (r.SecAgg != nil):
		return fmt.Errorf("%w: a secure round carries its SecAgg parameters, and only a secure round does", ErrMalformed)
	}
	if err := r.checkStrategy(); err != nil {
		return err
	}
	if r.Campaign != nil {
		if err := r.Campaign.Check(); err != nil {
			return err
		}
	}
	if err := CheckConfig(r.Config); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if r.Secure {
		if err := r.checkSecure(); err != nil {
			return err
		}
	}
	switch r.State {
	case RoundOpen, RoundAggregating, RoundDone, RoundFailed:
	default:
		return fmt.Errorf("%w: state %q", ErrMalformed, r.State)
	}
	if _, err := peer.Decode(r.Coordinator); err != nil {
		return fmt.Errorf("%w: coordinator %q is not a peer ID", ErrMalformed, r.Coordinator)
	}
	return nil
}

// DeadlineTime returns the deadline as a time.
func (r *Round) DeadlineTime() time.Time { return time.UnixMilli(r.Deadline).UTC() }

// Encode returns the wire form of r.
func (r *Round) Encode() ([]byte, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	b, err := wire.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode round: %w", err)
	}
	if len(b) > MaxRoundSize {
		return nil, fmt.Errorf("encode round: %d bytes: %w", len(b), ErrTooLarge)
	}
	return b, nil
}

// DecodeRound parses a round announcement and checks that from, the message's signed author,
// is the round's coordinator.
func DecodeRound(b []byte, from peer.ID) (*Round, error) {
	if len(b) > MaxRoundSize {
		return nil, fmt.Errorf("round announcement of %d bytes: %w", len(b), ErrTooLarge)
	}
	var r Round
	if err := wire.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: round announcement: %v", ErrMalformed, err)
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	if from.String() != r.Coordinator {
		return nil, fmt.Errorf("%w: round %s is announced by %s, not its coordinator", ErrMalformed, r.ID, from)
	}
	return &r, nil
}

// MaxSecureTrainers caps min_updates of a secure round (its roster; protocols/updates).
const MaxSecureTrainers = 256

// checkSecure validates a secure round's options: rules that need individual updates are
// refused, and the SecAgg parameters must hold for a roster of min_updates trainers.
func (r *Round) checkSecure() error {
	if err := SecureRule(r.Rule, r.ClipNorm, r.ClipMode); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if r.MinUpdates > MaxSecureTrainers {
		return fmt.Errorf("%w: a secure round takes at most %d trainers, not min_updates %d", ErrMalformed, MaxSecureTrainers, r.MinUpdates)
	}
	if err := r.SecAgg.Check(r.MinUpdates); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// SecureRule refuses, with one sentence each, the options a secure round cannot run: a rule
// other than fedavg, and clipping by rejection (both need individual updates).
func SecureRule(rule string, clipNorm float64, clipMode string) error {
	if rule != fl.RuleFedAvg && rule != "" {
		return fmt.Errorf("secure rounds sum masked updates, so rule %s needs individual updates the coordinator never sees: use fedavg or a plain round", rule)
	}
	if clipNorm > 0 && clipMode != ClipScale {
		return fmt.Errorf("secure rounds sum masked updates, so clip_mode reject needs individual updates the coordinator never sees: use clip_mode scale (each trainer scales its delta to clip_norm before masking) or a plain round")
	}
	return nil
}
