package updates

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PurposeReport is the session purpose of a trainer's report query (updates/report/1): a Query
// for a round the asking peer submitted to, answered with a Receipt whose Report is set.
const PurposeReport = "updates/report/1"

// Bounds of a Report, so that one always fits in MaxReceipt (a coordinator trims what it sends
// to them; a trainer refuses an answer beyond them).
const (
	MaxReportMetrics = 32  // entries of a Report's (or a Verdict's) Metrics
	MaxReportAnchors = 8   // the anchors a trainer is told: its update's, the aggregate's, the manifest's
	maxMetricKey     = 64  // bytes of a metric's name
	maxAnchorLen     = 256 // bytes of an anchor's kv-store key
	maxRuleLen       = 32
	maxReasonLen     = 64
	maxPeerIDLen     = 128 // bytes of a peer ID's string form
)

// ErrReport is wrapped by every error of Report.Check.
var ErrReport = errors.New("malformed round report")

// Report is what a coordinator tells one trainer about a round that ended with an aggregate:
// the trainer's own verdict, the new version and the round's aggregate metrics, never another
// trainer's verdict.
type Report struct {
	Round           string             `cbor:"1,keyasint"`
	BaseModel       []byte             `cbor:"2,keyasint"` // ModelID, 32 bytes
	NewModel        []byte             `cbor:"3,keyasint"` // ModelID, 32 bytes
	Rule            string             `cbor:"4,keyasint"`
	AggregateSHA256 []byte             `cbor:"5,keyasint"`
	Verdict         Verdict            `cbor:"6,keyasint"`
	Anchors         []string           `cbor:"7,keyasint,omitempty"`
	Metrics         map[string]float64 `cbor:"8,keyasint,omitempty"`
	// Reward is what the coordinator paid this trainer for the round, if it did (reward.go):
	// a claim the trainer checks on the ledger.
	Reward *Reward `cbor:"9,keyasint,omitempty"`
	// Secure says the round ran secure aggregation: the coordinator never saw the trainer's
	// update, so the verdict says only that its masked input is in the aggregate, with no
	// hash, samples or norm.
	Secure bool `cbor:"10,keyasint,omitempty"`
}

// Verdict is the coordinator's judgement of one trainer's update.
type Verdict struct {
	Trainer  string             `cbor:"1,keyasint"` // peer ID
	Samples  uint64             `cbor:"2,keyasint"`
	Norm     float64            `cbor:"3,keyasint"`
	Accepted bool               `cbor:"4,keyasint,omitempty"`
	Reason   string             `cbor:"5,keyasint,omitempty"`
	Clipped  bool               `cbor:"6,keyasint,omitempty"`
	SHA256   []byte             `cbor:"7,keyasint"`
	Metrics  map[string]float64 `cbor:"8,keyasint,omitempty"` // the trainer's hook's numbers
}

// Check validates a received report's fields and bounds (not its claims).
func (r *Report) Check() error {
	switch {
	case r.Round == "" || len(r.Round) > maxRoundLen:
		return fmt.Errorf("%w: round ID of %d bytes", ErrReport, len(r.Round))
	case len(r.BaseModel) != 32 || len(r.NewModel) != 32:
		return fmt.Errorf("%w: a model ID has 32 bytes", ErrReport)
	case len(r.AggregateSHA256) != sha256.Size || (!r.Secure && len(r.Verdict.SHA256) != sha256.Size):
		return fmt.Errorf("%w: a SHA-256 has 32 bytes", ErrReport)
	case r.Secure && (len(r.Verdict.SHA256) != 0 || r.Verdict.Samples != 0 || r.Verdict.Norm != 0):
		return fmt.Errorf("%w: a secure round's verdict has no update hash, samples or norm", ErrReport)
	case len(r.Rule) > maxRuleLen || len(r.Verdict.Reason) > maxReasonLen:
		return fmt.Errorf("%w: rule or reason too long", ErrReport)
	case len(r.Anchors) > MaxReportAnchors:
		return fmt.Errorf("%w: %d anchors, at most %d", ErrReport, len(r.Anchors), MaxReportAnchors)
	case math.IsNaN(r.Verdict.Norm) || math.IsInf(r.Verdict.Norm, 0) || r.Verdict.Norm < 0:
		return fmt.Errorf("%w: norm %v", ErrReport, r.Verdict.Norm)
	}
	if _, err := peer.Decode(r.Verdict.Trainer); err != nil || len(r.Verdict.Trainer) > maxPeerIDLen {
		return fmt.Errorf("%w: trainer %q is not a peer ID", ErrReport, r.Verdict.Trainer)
	}
	for _, a := range r.Anchors {
		if a == "" || len(a) > maxAnchorLen {
			return fmt.Errorf("%w: an anchor key of %d bytes", ErrReport, len(a))
		}
	}
	if err := checkMetrics(r.Metrics); err != nil {
		return err
	}
	if r.Reward != nil {
		if err := r.Reward.check(); err != nil {
			return err
		}
	}
	return checkMetrics(r.Verdict.Metrics)
}

func checkMetrics(m map[string]float64) error {
	if len(m) > MaxReportMetrics {
		return fmt.Errorf("%w: %d metrics, at most %d", ErrReport, len(m), MaxReportMetrics)
	}
	for k, v := range m {
		if k == "" || len(k) > maxMetricKey || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: metric %.64q = %v", ErrReport, k, v)
		}
	}
	return nil
}

// RequestReport asks the coordinator p for h's own report on round: its verdict, the new model
// and the aggregate metrics. A refusal is an *Error; an answer that is not a valid report of
// that round for h is an error wrapping ErrReport. It waits at most StreamTimeout, or less as
// ctx says.
func RequestReport(ctx context.Context, h host.Host, p peer.ID, round string) (*Report, error) {
	res, err := Request(ctx, h, p, PurposeReport, &Query{Round: round})
	if err != nil {
		return nil, err
	}
	rep := res.Report
	if rep == nil {
		return nil, fmt.Errorf("%w: %s answered without a report", ErrReport, p)
	}
	switch err := rep.Check(); {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", p, err)
	case rep.Round != round || rep.Verdict.Trainer != h.ID().String():
		return nil, fmt.Errorf("%w: %s answered with the report of round %q for %s", ErrReport, p, rep.Round, rep.Verdict.Trainer)
	}
	return rep, nil
}

// Trim drops what a report holds beyond Check's bounds, so a coordinator's answer always fits:
// metrics with bad names or values and the last ones by name beyond MaxReportMetrics, empty or
// long anchors and those beyond MaxReportAnchors, a malformed reward; a long reason or rule is cut.
func (r *Report) Trim() {
	r.Metrics, r.Verdict.Metrics = trimMetrics(r.Metrics), trimMetrics(r.Verdict.Metrics)
	anchors := r.Anchors[:0:0]
	for _, a := range r.Anchors {
		if a != "" && len(a) <= maxAnchorLen && len(anchors) < MaxReportAnchors {
			anchors = append(anchors, a)
		}
	}
	r.Anchors = anchors
	if r.Reward != nil && r.Reward.check() != nil {
		r.Reward = nil
	}
	if len(r.Verdict.Reason) > maxReasonLen {
		r.Verdict.Reason = r.Verdict.Reason[:maxReasonLen]
	}
	if len(r.Rule) > maxRuleLen {
		r.Rule = r.Rule[:maxRuleLen]
	}
}

func trimMetrics(m map[string]float64) map[string]float64 {
	if m == nil {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if k != "" && len(k) <= maxMetricKey && !math.IsNaN(v) && !math.IsInf(v, 0) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make(map[string]float64, min(len(keys), MaxReportMetrics))
	for _, k := range keys[:min(len(keys), MaxReportMetrics)] {
		out[k] = m[k]
	}
	return out
}
