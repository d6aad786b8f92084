package rounds

import (
	"context"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// reportTimeout bounds a trainer's report query to a round's coordinator.
const reportTimeout = 30 * time.Second

// Report returns the report of a round. On its coordinator it is the stored report of a round
// that ended with an aggregate. On a trainer that submitted to a round coordinated elsewhere it
// is asked of the coordinator (updates/report/1) each time, nothing is kept: its own verdict as
// the only participant, the new model, the aggregate metrics and the anchors that concern it,
// and the reward the coordinator says it paid this trainer, shown verified only once checked on
// the ledger (reward.go).
// Refusals are *apierr.Error values: a round not known or without a report yet (NotFound), one
// coordinated elsewhere that this node did not submit to (Role), an unreachable coordinator
// (Unavailable), or the coordinator's refusal with its code.
func (s *Service) Report(ctx context.Context, id string) (*store.ReportRecord, error) {
	var rec store.ReportRecord
	err := s.deps.Store.Get(store.ReportKey(id), &rec)
	if !errors.Is(err, store.ErrNotFound) {
		return &rec, err
	}
	if rep, ok := s.secureTrainerReport(id); ok {
		s.secureReward(ctx, rep)
		return rep, nil
	}
	r, gerr := s.Get(id)
	switch {
	case gerr != nil:
		return &rec, apierr.Errorf(apierr.NotFound, "round %q is not known", id)
	case r.Coordinator == s.cfg.Self.String():
		return &rec, apierr.Errorf(apierr.NotFound, "round %s is %s: its report is written when it ends with an aggregate", id, r.State)
	}
	submitted, err := s.submittedRounds()
	if err != nil {
		return &rec, err
	}
	if submitted[id] == "" {
		return &rec, apierr.Errorf(apierr.Role, "round %s is coordinated by %s and this node submitted no update to it: ask the coordinator for the report", id, r.Coordinator)
	}
	return s.askReport(ctx, r)
}

// askReport asks a round's coordinator for this trainer's report on it and shapes the answer as
// a report with this node as the only participant.
func (s *Service) askReport(ctx context.Context, r *announce.Round) (*store.ReportRecord, error) {
	coord, err := peer.Decode(r.Coordinator)
	if err != nil {
		return nil, err
	}
	if s.deps.Host == nil {
		return nil, &apierr.Error{Code: apierr.Unavailable, Message: "the round's coordinator " + r.Coordinator + " could not be reached", Data: "this node has no network"}
	}
	qctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	rep, err := updates.RequestReport(qctx, s.deps.Host, coord, r.ID)
	var refusal *updates.Error
	switch {
	case errors.As(err, &refusal):
		return nil, &apierr.Error{Code: refusal.Code, Message: refusal.Message}
	case errors.Is(err, updates.ErrReport):
		return nil, apierr.Errorf(apierr.Integrity, "the round's coordinator %s answered with a bad report: %v", r.Coordinator, err)
	case err != nil:
		return nil, &apierr.Error{Code: apierr.Unavailable, Message: "the round's coordinator " + r.Coordinator + " could not be reached", Data: err.Error()}
	}
	v := rep.Verdict
	out := &store.ReportRecord{
		RoundID: rep.Round, BaseModel: hex.EncodeToString(rep.BaseModel), NewModel: hex.EncodeToString(rep.NewModel), Rule: rep.Rule,
		Participants: []store.ParticipantRecord{{
			PeerID: v.Trainer, Samples: v.Samples, Norm: v.Norm, Accepted: v.Accepted, Reason: v.Reason, Clipped: v.Clipped,
			SHA256: hex.EncodeToString(v.SHA256), Metrics: v.Metrics,
		}},
		AggregateSHA256: hex.EncodeToString(rep.AggregateSHA256),
		Anchors:         append([]string{}, rep.Anchors...),
		Metrics:         nonNil(rep.Metrics),
		Timings:         map[string]float64{},
	}
	if rep.Reward != nil {
		out.Reward = s.checkReward(ctx, rep.Round, rep.Reward)
	}
	return out, nil
}

func nonNil(m map[string]float64) map[string]float64 {
	if m == nil {
		return map[string]float64{}
	}
	return m
}

// handleReport answers a trainer's report query (updates/report/1) on a round this node
// coordinates: only a peer that submitted to the round is answered, and only once the round
// ended with an aggregate; the answer holds that trainer's verdict and no other's, and of the
// report's anchors the trainer's update's and those that are no other trainer's.
func (s *Service) handleReport(ctx context.Context, from peer.ID, q *updates.Query) *updates.Receipt {
	r, err := s.Get(q.Round)
	if err != nil || r.Coordinator != s.cfg.Self.String() {
		return receipt(apierr.NotFound, "this coordinator runs no round %q", q.Round)
	}
	if r.Secure {
		return s.secureReport(from, r)
	}
	var mine updateRecord
	if err := s.deps.Store.Get(store.UpdateKey(q.Round, from.String()), &mine); err != nil {
		return receipt(apierr.Role, "%s submitted no update to round %s: only its trainers are told its report", from, q.Round)
	}
	var rep store.ReportRecord
	if err := s.deps.Store.Get(store.ReportKey(q.Round), &rep); err != nil {
		if r.State == announce.RoundFailed {
			return receipt(apierr.NotFound, "round %s failed, so it has no report: %s", q.Round, r.Error)
		}
		return receipt(apierr.NotFound, "round %s is %s: its report is written when it ends with an aggregate", q.Round, r.State)
	}
	others := map[string]bool{} // other trainers' update anchors
	err = s.deps.Store.Scan(store.UpdatePrefix(q.Round), func(_ store.Key, decode func(any) error) error {
		var u updateRecord
		if decode(&u) == nil && u.Trainer != mine.Trainer && u.Anchor != "" {
			others[u.Anchor] = true
		}
		return nil
	})
	if err != nil {
		return receipt(apierr.Internal, "read the round's updates: %v", err)
	}
	out := &updates.Report{
		Round: rep.RoundID, Rule: rep.Rule, Metrics: rep.Metrics,
		Verdict: updates.Verdict{
			Trainer: mine.Trainer, Samples: mine.Samples, Norm: mine.Norm, Accepted: mine.Accepted, Reason: mine.Reason,
			Clipped: mine.Clipped, SHA256: mine.SHA256, Metrics: mine.Metrics,
		},
	}
	if mine.Anchor != "" {
		out.Anchors = append(out.Anchors, mine.Anchor)
	}
	out.Reward = s.reportReward(q.Round, from)
	for _, a := range rep.Anchors {
		if !others[a] && a != mine.Anchor {
			out.Anchors = append(out.Anchors, a)
		}
	}
	if out.BaseModel, err = hex.DecodeString(rep.BaseModel); err == nil {
		if out.NewModel, err = hex.DecodeString(rep.NewModel); err == nil {
			out.AggregateSHA256, err = hex.DecodeString(rep.AggregateSHA256)
		}
	}
	if err != nil {
		return receipt(apierr.Internal, "the stored report of round %s: %v", q.Round, err)
	}
	out.Trim()
	if err := out.Check(); err != nil {
		return receipt(apierr.Internal, "the report of round %s: %v", q.Round, err)
	}
	return &updates.Receipt{Report: out}
}

// submittedRounds maps each round this node submitted an update to (accepted, or judged and
// rejected: the coordinator takes one submission per trainer either way) to that update's ID. An
// update submitted to the round that re-opens the one it was trained for counts for both; where
// two updates claim a round, the one submitted to it wins over the one trained for it.
func (s *Service) submittedRounds() (map[string]string, error) {
	trainedFor, submittedTo := map[string]string{}, map[string]string{}
	prefix := store.TrainedPrefix().String()
	err := s.deps.Store.Scan(store.TrainedPrefix(), func(k store.Key, decode func(any) error) error {
		var t trainedUpdate
		if decode(&t) == nil && t.Submitted {
			id := strings.TrimPrefix(k.String(), prefix)
			trainedFor[t.Round] = id
			if t.SubmittedTo != "" {
				submittedTo[t.SubmittedTo] = id
			}
		}
		return nil
	})
	maps.Copy(trainedFor, submittedTo)
	return trainedFor, err
}

// Standing is what a round means to this node, for round_list.
type Standing struct {
	// Joinable: the round is open, its deadline is ahead, its model's lineage authorises its
	// coordinator, this node is a trainer and has not submitted to it.
	Joinable bool
	// Submitted: this node submitted an update to the round.
	Submitted bool
	// UpdateID is the update this node submitted to the round ("" when it submitted none).
	UpdateID string
}

// Standings returns the Standing of each of rs, in order, as of now.
func (s *Service) Standings(rs []announce.Round, now time.Time) ([]Standing, error) {
	submitted, err := s.submittedRounds()
	if err != nil {
		return nil, err
	}
	out := make([]Standing, len(rs))
	for i := range rs {
		r := &rs[i]
		out[i].UpdateID = submitted[r.ID]
		out[i].Submitted = out[i].UpdateID != ""
		out[i].Joinable = s.cfg.IsTrainer && !out[i].Submitted && r.State == announce.RoundOpen &&
			r.DeadlineTime().After(now) && s.authorised(r) == nil
	}
	return out, nil
}

// secureReport answers a contributor's report query on a secure round this node coordinated:
// the new version, the aggregate metrics and the reward it paid that trainer. Only a trainer
// whose masked input is in the aggregate is answered.
func (s *Service) secureReport(from peer.ID, r *announce.Round) *updates.Receipt {
	var rep store.ReportRecord
	if err := s.deps.Store.Get(store.ReportKey(r.ID), &rep); err != nil || rep.NewModel == "" {
		return receipt(apierr.NotFound, "secure round %s is %s: it has no aggregate to report on", r.ID, r.State)
	}
	if !slices.Contains(rep.Contributors, from.String()) {
		return receipt(apierr.Role, "%s is not a contributor of secure round %s: only its contributors are told its report", from, r.ID)
	}
	out := &updates.Report{Round: r.ID, Rule: rep.Rule, Metrics: rep.Metrics, Secure: true,
		Verdict: updates.Verdict{Trainer: from.String(), Accepted: true}, Reward: s.reportReward(r.ID, from)}
	var err error
	if out.BaseModel, err = hex.DecodeString(rep.BaseModel); err == nil {
		if out.NewModel, err = hex.DecodeString(rep.NewModel); err == nil {
			out.AggregateSHA256, err = hex.DecodeString(rep.AggregateSHA256)
		}
	}
	if err != nil {
		return receipt(apierr.Internal, "the stored report of round %s: %v", r.ID, err)
	}
	out.Trim()
	if err := out.Check(); err != nil {
		return receipt(apierr.Internal, "the report of round %s: %v", r.ID, err)
	}
	return &updates.Receipt{Report: out}
}

// secureReward adds to a trainer's own report on a secure round it contributed to the reward
// the coordinator says it paid, checked on the ledger; the coordinator is asked only when the
// round published a version, and not being able to ask leaves the report as it is.
func (s *Service) secureReward(ctx context.Context, rep *store.ReportRecord) {
	if rep.NewModel == "" || len(rep.Participants) != 1 || !rep.Participants[0].Accepted || s.deps.Host == nil {
		return
	}
	r, err := s.Get(rep.RoundID)
	if err != nil || r.Coordinator == s.cfg.Self.String() {
		return
	}
	theirs, err := s.askReport(ctx, r)
	if err != nil {
		s.log.Info("ask the coordinator of a secure round for its reward", "round", r.ID, "err", err)
		return
	}
	rep.Reward = theirs.Reward
	if len(rep.Metrics) == 0 {
		rep.Metrics = theirs.Metrics
	}
}
