package rounds

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/secagg"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A secure round (announce.Round.Secure) runs SecAgg+ (node/secagg) between its coordinator and
// its trainers, one updates/secagg/1 session per trainer (secure_session.go): the coordinator
// keeps only the masked running sum (and the masked inputs being received, at most inputMemory
// bytes of them at once) and learns only the weighted sum of the trainers' deltas.
// Its state lives in memory: a coordinator that restarts fails its open secure rounds.
//
// Phases: advertise (trainers join with their keys; it closes when min_updates have joined, or at
// the deadline with at least threshold+1), shares, input and unmask (each closes when every
// remaining member answered or left, or after securePhaseTimeout, when the silent count as
// dropped), then the sum. A member whose session ends is dropped at once.

// inputMemory bounds the bytes of masked inputs a coordinator reads at once, over all its secure
// rounds (each is read whole, then added to its round's running sum and wiped).
const inputMemory = 256 << 20

// securePhase is where a secure round stands.
type securePhase int

const (
	phaseAdvertise securePhase = iota
	phaseShares
	phaseInput
	phaseUnmask
	phaseSumming
	phaseDone
	phaseFailed
)

func (p securePhase) String() string {
	return [...]string{"advertise", "shares", "input", "unmask", "summing", "done", "failed"}[p]
}

// Timings of secure rounds (variables: tests shorten them).
var (
	// securePhaseTimeout bounds each phase after advertise: then the silent members are dropped.
	securePhaseTimeout = 2 * time.Minute
	// secureKeepalive is how often the coordinator sends a waiting member a keepalive.
	secureKeepalive = updates.KeepaliveEvery
)

// secureRound is the coordinator's state of one secure round. Guarded by its liveRound's mu.
type secureRound struct {
	p       secagg.Params
	dim     int
	phase   securePhase
	members []*member      // in join order; from phaseShares, the roster in index order
	joins   []updates.Join // the roster's signed joins
	srv     *secagg.Server
	changed chan struct{} // closed (and replaced) on every change a session waits for
	timer   *time.Timer   // the running phase's timeout

	survivors, dropped []int
	outcome            updates.Outcome // once done or failed (Contributed is set per member)
	began              time.Time       // when the roster was fixed
}

// member is one trainer of a secure round.
type member struct {
	peer  peer.ID
	join  updates.Join
	keys  secagg.Keys
	index int // in the roster; -1 before it is fixed
	// dropped: the round no longer waits for it (its session ended, or it was silent past a
	// phase's timeout: its session then stays, so that it learns the outcome); gone: its
	// session ended.
	dropped, gone bool

	shared, input, revealed, survivor bool
	inputHash                         []byte // SHA-256 of its masked vector's bytes
}

func (sr *secureRound) notify() {
	close(sr.changed)
	sr.changed = make(chan struct{})
}

// openSecure sets up a round being opened as secure: its SecAgg parameters (the defaults for
// min_updates trainers, MaxWeight the round's sample ceiling, overridden by p) and its vector's
// dimension, from the base model.
func (s *Service) openSecure(lr *liveRound, p OpenParams) error {
	if p.MinUpdates > announce.MaxSecureTrainers {
		return apierr.Errorf(apierr.InvalidParams, "a secure round takes at most %d trainers: give min_updates ≤ %d", announce.MaxSecureTrainers, announce.MaxSecureTrainers)
	}
	sp := secagg.DefaultParams(p.MinUpdates)
	sp.MaxWeight = lr.r.SampleCeiling()
	if p.Neighbours != 0 {
		sp.Neighbours = p.Neighbours
	}
	if p.Threshold != 0 {
		sp.Threshold = p.Threshold
	}
	if p.Clip != 0 {
		sp.Clip = p.Clip
	}
	if p.Bits != 0 {
		sp.Bits = p.Bits
	}
	if err := sp.Check(p.MinUpdates); err != nil {
		return apierr.Errorf(apierr.InvalidParams, "secure round parameters (neighbours %d, threshold %d, clip %g, bits %d, max weight %d) for %d trainers: %v", sp.Neighbours, sp.Threshold, sp.Clip, sp.Bits, sp.MaxWeight, p.MinUpdates, err)
	}
	lr.r.Secure, lr.r.SecAgg = true, &sp
	return nil
}

// startSecure sets up a secure round's state once its base model is loaded: its vector's
// dimension comes from the base.
func (s *Service) startSecure(lr *liveRound) error {
	dim := flatDim(lr.base)
	if dim == 0 || dim > updates.MaxDim {
		return apierr.Errorf(apierr.InvalidParams, "model %x has %d coordinates: a secure round takes 1 to %d", lr.r.Model[:8], dim, updates.MaxDim)
	}
	lr.sec = &secureRound{p: *lr.r.SecAgg, dim: dim, changed: make(chan struct{})}
	return nil
}

// secureJoin admits a trainer's signed join to a secure round in its advertise phase. The
// caller checked the signature; it returns a refusal, or the new member.
func (s *Service) secureJoin(lr *liveRound, from peer.ID, st *updates.JoinStatement, join *updates.Join) (*member, *updates.Receipt) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	sr := lr.sec
	if lr.r.State != announce.RoundOpen || sr.phase != phaseAdvertise {
		return nil, receipt(apierr.Conflict, "secure round %s has fixed its roster (%s): it takes no more trainers", lr.r.ID, sr.phase)
	}
	for _, m := range sr.members {
		if m.peer == from {
			return nil, receipt(apierr.Conflict, "duplicate join: %s already joined secure round %s", from, lr.r.ID)
		}
		if string(m.keys.Seal) == string(st.Keys.Seal) || string(m.keys.Mask) == string(st.Keys.Mask) {
			return nil, receipt(apierr.Conflict, "the join's keys are another member's: every trainer makes its own keys for a round")
		}
	}
	baseRec, err := s.deps.Catalog.Get(content.ModelID(lr.r.Model))
	if err != nil {
		return nil, receipt(apierr.Internal, "base model: %v", err)
	}
	if !s.deps.Grants.Entitled(baseRec, from) {
		return nil, receipt(apierr.NotUnlocked, "only trainers who paid for the model's lineage may join its rounds")
	}
	if len(sr.members) >= announce.MaxSecureTrainers {
		return nil, receipt(apierr.Conflict, "secure round %s is full", lr.r.ID)
	}
	m := &member{peer: from, join: *join, keys: st.Keys, index: -1}
	sr.members = append(sr.members, m)
	lr.r.Updates = len(sr.members)
	if err := s.save(lr, nil); err != nil {
		sr.members = sr.members[:len(sr.members)-1]
		lr.r.Updates = len(sr.members)
		return nil, receipt(apierr.Internal, "record the join: %v", err)
	}
	s.log.Info("trainer joined secure round", "round", lr.r.ID, "peer", from, "joined", len(sr.members), "min_updates", lr.r.MinUpdates)
	if len(sr.members) >= lr.r.MinUpdates {
		s.closeAdvertise(lr, "")
	}
	return m, nil
}

// closeAdvertise fixes the roster, or fails the round with too few members (why, when set,
// says what closed it). The caller holds lr.mu.
func (s *Service) closeAdvertise(lr *liveRound, why string) {
	sr := lr.sec
	n := len(sr.members)
	if n < sr.p.Threshold+1 || n < 2 {
		s.failSecure(lr, fmt.Sprintf("%s%d trainers joined secure round %s, fewer than the %d (threshold %d + 1) it needs", why, n, lr.r.ID, max(sr.p.Threshold+1, 2), sr.p.Threshold))
		return
	}
	if err := sr.p.Check(n); err != nil {
		s.failSecure(lr, fmt.Sprintf("%sthe secure aggregation parameters do not hold for the %d trainers that joined: %v", why, n, err))
		return
	}
	keys := make([]secagg.Keys, n)
	sr.joins = make([]updates.Join, n)
	for i, m := range sr.members {
		m.index, keys[i], sr.joins[i] = i, m.keys, m.join
	}
	srv, err := secagg.NewServer(sr.p, []byte(lr.r.ID), keys, sr.dim)
	if err != nil {
		s.failSecure(lr, fmt.Sprintf("start secure aggregation: %v", err))
		return
	}
	sr.srv, sr.began = srv, time.Now()
	s.log.Info("secure round roster fixed", "round", lr.r.ID, "members", n)
	s.enterPhase(lr, phaseShares)
}

// enterPhase moves a secure round to phase p and arms its timeout. The caller holds lr.mu.
func (s *Service) enterPhase(lr *liveRound, p securePhase) {
	sr := lr.sec
	sr.phase = p
	if sr.timer != nil {
		sr.timer.Stop()
	}
	if p < phaseSumming {
		sr.timer = time.AfterFunc(securePhaseTimeout, func() { s.bg.Go(func(context.Context) { s.secureTimeout(lr, p) }) })
	}
	sr.notify()
	s.secureAdvance(lr)
}

// secureTimeout drops the members phase p still waits for. The caller does not hold lr.mu.
func (s *Service) secureTimeout(lr *liveRound, p securePhase) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	sr := lr.sec
	if sr.phase != p {
		return
	}
	for _, m := range sr.members {
		if !m.dropped && sr.waitsFor(m) {
			s.log.Info("secure round member dropped: silent past the phase's timeout", "round", lr.r.ID, "peer", m.peer, "phase", p)
			m.dropped = true
		}
	}
	s.secureAdvance(lr)
}

// waitsFor reports whether the current phase waits for m's message.
func (sr *secureRound) waitsFor(m *member) bool {
	switch sr.phase {
	case phaseShares:
		return !m.shared
	case phaseInput:
		return m.shared && !m.input
	case phaseUnmask:
		return m.survivor && !m.revealed
	}
	return false
}

// secureLeave is called when m's session ended: before the roster is fixed it leaves the round
// (it may join again); after, it is dropped at once.
func (s *Service) secureLeave(lr *liveRound, m *member) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	sr := lr.sec
	m.gone = true
	if sr.phase >= phaseSumming || m.dropped {
		return
	}
	if sr.phase == phaseAdvertise {
		for i, x := range sr.members {
			if x == m {
				sr.members = append(sr.members[:i], sr.members[i+1:]...)
				break
			}
		}
		lr.r.Updates = len(sr.members)
		if err := s.save(lr, nil); err != nil {
			s.log.Warn("save round", "round", lr.r.ID, "err", err)
		}
		s.log.Info("trainer left secure round before its roster was fixed", "round", lr.r.ID, "peer", m.peer)
		return
	}
	s.log.Info("secure round member dropped: its session ended", "round", lr.r.ID, "peer", m.peer, "phase", sr.phase)
	m.dropped = true
	sr.notify()
	s.secureAdvance(lr)
}

// secureAdvance closes the current phase if every remaining member answered. The caller holds
// lr.mu.
func (s *Service) secureAdvance(lr *liveRound) {
	sr := lr.sec
	if sr.phase == phaseAdvertise || sr.phase >= phaseSumming {
		return
	}
	for _, m := range sr.members {
		if !m.dropped && sr.waitsFor(m) {
			return
		}
	}
	switch sr.phase {
	case phaseShares:
		shared := 0
		for _, m := range sr.members {
			if m.shared {
				shared++
			}
		}
		if shared < sr.p.Threshold+1 {
			s.failSecure(lr, fmt.Sprintf("%d of the %d members shared their keys, fewer than the %d (threshold + 1) needed", shared, len(sr.members), sr.p.Threshold+1))
			return
		}
		s.enterPhase(lr, phaseInput)
	case phaseInput:
		survivors, dropped, err := sr.srv.Unmasking()
		if err != nil {
			s.failSecure(lr, fmt.Sprintf("%d of the %d members sent a masked input, fewer than the %d (threshold) needed to unmask: %v", sr.count(func(m *member) bool { return m.input }), len(sr.members), sr.p.Threshold, err))
			return
		}
		sr.survivors, sr.dropped = survivors, dropped
		for _, i := range survivors {
			sr.members[i].survivor = true
		}
		s.enterPhase(lr, phaseUnmask)
	case phaseUnmask:
		s.enterPhase(lr, phaseSumming)
		s.bg.Go(func(context.Context) { s.aggregateSecure(lr) })
	}
}

func (sr *secureRound) count(f func(*member) bool) int {
	n := 0
	for _, m := range sr.members {
		if f(m) {
			n++
		}
	}
	return n
}

// peers are the peer IDs of the members f selects, sorted.
func (sr *secureRound) peers(f func(*member) bool) []string {
	out := []string{}
	for _, m := range sr.members {
		if f(m) {
			out = append(out, m.peer.String())
		}
	}
	sort.Strings(out)
	return out
}

// secureReport starts the report of a secure round.
func secureReport(r *announce.Round) *store.ReportRecord {
	return &store.ReportRecord{
		RoundID: r.ID, BaseModel: hex.EncodeToString(r.Model), Rule: r.Rule, Participants: []store.ParticipantRecord{},
		Anchors: []string{}, Metrics: map[string]float64{}, Timings: map[string]float64{},
		Secure: true, Contributors: []string{}, Dropouts: []string{}, SecAgg: reportSecAgg(r.SecAgg),
	}
}

// failSecure fails a secure round with a report saying why: every member is a dropout, none
// contributed. The caller holds lr.mu.
func (s *Service) failSecure(lr *liveRound, why string) {
	rep := secureReport(&lr.r)
	rep.Error = why
	if sr := lr.sec; sr != nil {
		sr.phase = phaseFailed
		if sr.timer != nil {
			sr.timer.Stop()
		}
		rep.Dropouts = sr.peers(func(*member) bool { return true })
		sr.outcome = updates.Outcome{Error: why, Dropouts: rep.Dropouts}
		sr.srv = nil
		sr.notify()
	}
	lr.r.State, lr.r.Error = announce.RoundFailed, why
	if len(lr.r.Error) > 1024 {
		lr.r.Error = lr.r.Error[:1024]
	}
	if err := s.save(lr, func(tx *store.Tx) error { return tx.Put(store.ReportKey(lr.r.ID), rep) }); err != nil {
		s.log.Error("save failed round", "round", lr.r.ID, "err", err)
	}
	s.end(lr)
	s.log.Warn("round failed", "round", lr.r.ID, "why", why)
}

// aggregateSecure removes the masks, publishes base + the weighted mean delta as the next
// version and writes the report.
func (s *Service) aggregateSecure(lr *liveRound) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	sr := lr.sec
	if sr.phase != phaseSumming || lr.r.State != announce.RoundOpen {
		return
	}
	lr.r.State = announce.RoundAggregating
	if err := s.save(lr, nil); err != nil {
		s.log.Error("save round", "round", lr.r.ID, "err", err)
	}
	rep, err := s.runSecureAggregation(lr)
	if err != nil {
		if s.bg.Context().Err() != nil {
			return // shutting down: the round is failed on restart (its state was in memory)
		}
		var refused *floorRefusal
		if errors.As(err, &refused) {
			sr.phase, sr.srv = phaseFailed, nil
			if sr.timer != nil {
				sr.timer.Stop()
			}
			sr.outcome = updates.Outcome{Error: err.Error(), Contributors: refused.rep.Contributors, Dropouts: refused.rep.Dropouts}
			sr.notify()
			s.failWithReport(lr, err.Error(), refused.rep)
			return
		}
		s.failSecure(lr, err.Error())
		return
	}
	newID, _ := parseModelID(rep.NewModel)
	lr.r.State, lr.r.NewModel, lr.r.Updates = announce.RoundDone, newID[:], len(rep.Contributors)
	if err := s.save(lr, func(tx *store.Tx) error { return tx.Put(store.ReportKey(lr.r.ID), rep) }); err != nil {
		s.log.Error("save round report", "round", lr.r.ID, "err", err)
		return
	}
	sr.phase, sr.srv = phaseDone, nil
	sr.outcome = updates.Outcome{NewModel: newID[:], Contributors: rep.Contributors, Dropouts: rep.Dropouts}
	sr.notify()
	s.cfg.Metrics.Aggregated(rep.Metrics)
	os.RemoveAll(filepath.Join(s.cfg.RoundsDir, lr.r.ID)) // the aggregate is published
	s.end(lr)
	s.log.Info("secure round done", "round", lr.r.ID, "new_model", rep.NewModel, "contributors", len(rep.Contributors), "dropouts", len(rep.Dropouts))
}

// runSecureAggregation does the work of aggregateSecure. The caller holds lr.mu.
func (s *Service) runSecureAggregation(lr *liveRound) (*store.ReportRecord, error) {
	sr, r := lr.sec, &lr.r
	began := time.Now()
	sum, err := sr.srv.Sum()
	if err != nil {
		return nil, fmt.Errorf("%d of the %d members survived to unmask, and the masks cannot be removed with the reveals that came (threshold %d): %w", len(sr.survivors), len(sr.members), sr.p.Threshold, err)
	}
	mean, weight, err := secagg.Mean(sr.p, sum)
	clear(sum)
	if err != nil {
		return nil, fmt.Errorf("the sum of the masked inputs: %w", err)
	}
	result, err := addDelta(lr.base, mean)
	if err != nil {
		return nil, err
	}
	rep := secureReport(r)
	result, optState, err := s.serverStep(r, lr.base, result, rep.Metrics)
	if err != nil {
		return nil, err
	}
	rep.Contributors = sr.peers(func(m *member) bool { return m.survivor })
	rep.Dropouts = sr.peers(func(m *member) bool { return !m.survivor })
	rep.Timings["collect_seconds"] = sr.began.Sub(time.UnixMilli(r.OpenedAt)).Seconds()
	rep.Timings["secagg_seconds"] = began.Sub(sr.began).Seconds()
	if err := s.evalFloor(lr.base, result, rep.Metrics); err != nil {
		return nil, &floorRefusal{err: err, rep: rep}
	}
	result.Metadata = map[string]string{"califusion.round": r.ID, "califusion.rule": r.Rule, "califusion.secure": "secagg+", "samples": fmt.Sprint(weight)}
	if r.Strategy != "" {
		result.Metadata["califusion.strategy"] = r.Strategy
	}
	path := filepath.Join(s.cfg.RoundsDir, r.ID, "aggregate.safetensors")
	digest, err := writeSafetensors(path, result)
	if err != nil {
		return nil, err
	}
	rep.Timings["aggregate_seconds"] = time.Since(began).Seconds()
	pubStart := time.Now()
	baseID := content.ModelID(r.Model)
	baseRec, err := s.deps.Catalog.Get(baseID)
	if err != nil {
		return nil, err
	}
	rec, err := s.deps.Publisher.PublishVersion(s.bg.Context(), path, baseRec.Manifest.Name,
		fmt.Sprintf("secure fedavg of %d masked updates (weight %d) in round %s", len(rep.Contributors), weight, r.ID), baseID)
	if err != nil {
		return nil, fmt.Errorf("publish the aggregate: %w", err)
	}
	// In a threshold lineage the new key is split across the coordinators and only held in
	// memory here since publishing: wipe it now (a round on the version collects it again).
	s.deps.Keyring.Release(rec.ID)
	s.keepOptState(r.ID, r.Model, rec.ID[:], lr.base, optState)
	r.NewModel = rec.ID[:]
	rep.Timings["publish_seconds"] = time.Since(pubStart).Seconds()
	rep.NewModel = hex.EncodeToString(rec.ID[:])
	rep.AggregateSHA256 = hex.EncodeToString(digest[:])
	// One commitment per contributor: the hash of the masked vector it sent (which reveals
	// nothing of its update), bound to it as the subject.
	hashes := [][]byte{digest[:], rec.ID[:]}
	for _, i := range sr.survivors {
		m := sr.members[i]
		if a := s.commit(s.bg.Context(), &calimero.Commitment{
			Kind: calimero.KindMaskedInput, Round: r.ID, Model: r.Model, Hashes: [][]byte{m.inputHash}, Subject: []byte(m.peer),
		}); a != "" {
			rep.Anchors = append(rep.Anchors, a)
		}
		if len(hashes) < 64 {
			hashes = append(hashes, m.inputHash)
		}
	}
	if s.deps.Anchoring.Known(rec.ID) == calimero.StateVerified {
		rep.Anchors = append(rep.Anchors, calimero.AnchorKey(rec.ID))
	}
	if a := s.commit(s.bg.Context(), &calimero.Commitment{Kind: calimero.KindAggregate, Round: r.ID, Model: r.Model, Hashes: hashes, Samples: weight}); a != "" {
		rep.Anchors = append(rep.Anchors, a)
	}
	rep.Metrics["accepted"] = float64(len(rep.Contributors))
	rep.Metrics["dropouts"] = float64(len(rep.Dropouts))
	rep.Metrics["samples"] = float64(weight)
	return rep, nil
}
