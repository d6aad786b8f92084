package rounds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Coordinator failover. Every coordinator anchors a round commitment when it opens a round (its
// announcement as it opened, KindRound, in the lineage's training context). The other
// coordinators of the lineage watch the rounds they hear of: when a round that has not ended has
// had no announcement from its coordinator for train.failover_after (a coordinator repeats its
// open rounds every reannounceEvery) and this node has no connection to that coordinator, the
// first coordinator of the lineage, in the lineage's order, that is alive from this node's view
// (itself, or one it is connected to) re-opens the round: the same base model and parameters,
// read from the anchored commitment (or, with anchoring off, from the announcement it heard), a
// new ID, and Reopens naming the old one. Trainers submit the update they trained for the old
// round to the new one (Submit); the secure state of the old round is lost with its
// coordinator, so its trainers join the new round afresh.

// anchorRound anchors the commitment of a round as it opened, in the background (a Calimero
// call must not hold up round_open).
func (s *Service) anchorRound(r announce.Round) {
	if !s.deps.Anchoring.On() {
		return
	}
	body, err := r.Encode()
	if err != nil {
		s.log.Warn("encode round for its commitment", "round", r.ID, "err", err)
		return
	}
	s.bg.Go(func(ctx context.Context) {
		sum := sha256.Sum256(body)
		if a := s.commit(ctx, &calimero.Commitment{Kind: calimero.KindRound, Round: r.ID, Model: r.Model, Hashes: [][]byte{sum[:]}, Body: body}); a != "" {
			s.log.Info("round commitment anchored", "round", r.ID, "anchor", a)
		}
	})
}

// heardRound notes that r's coordinator announced it just now.
func (s *Service) heardRound(r *announce.Round) {
	if r.State != announce.RoundOpen && r.State != announce.RoundAggregating {
		return
	}
	if rec, err := s.deps.Catalog.Get(content.ModelID(r.Model)); err == nil && s.cfg.IsCoordinator && rec.Authorises(s.cfg.Self) {
		s.joinTraining(rec.Lineage())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.heard) >= maxHeard {
		for id := range s.heard { // drop one: the map only serves failover, which re-learns
			delete(s.heard, id)
			break
		}
	}
	s.heard[r.ID] = time.Now()
}

// maxHeard bounds the rounds whose last announcement time is kept.
const maxHeard = 4096

// lastHeard is when r's coordinator last announced it (the first time this node looked, for a
// round heard before it started).
func (s *Service) lastHeard(id string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.heard[id]
	if !ok {
		t = time.Now()
		s.heard[id] = t
	}
	return t
}

// watchFailover checks the rounds of others every quarter of train.failover_after.
func (s *Service) watchFailover(ctx context.Context) {
	after := s.cfg.Train.FailoverAfter.Duration
	if after <= 0 {
		return
	}
	t := time.NewTicker(max(after/4, 250*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, r := range s.orphans(after) {
			if id, source, err := s.reopen(ctx, r); err != nil {
				s.log.Warn("re-open a round whose coordinator went silent", "round", r.ID, "coordinator", r.Coordinator, "err", err)
			} else {
				s.log.Info("round re-opened: its coordinator went silent", "round", r.ID, "coordinator", r.Coordinator, "new_round", id, "from", source)
			}
		}
	}
}

// orphans returns the rounds this node should re-open now: not ended, not past their deadline,
// run by another coordinator of a lineage this node coordinates, silent for after and not
// connected, not re-opened yet, and this node the first live coordinator of the lineage after
// the silent one.
func (s *Service) orphans(after time.Duration) []announce.Round {
	known, err := s.List(nil)
	if err != nil {
		return nil
	}
	reopened := map[string]bool{}
	for _, r := range known {
		if r.Reopens != "" {
			reopened[r.Reopens] = true
		}
	}
	now := time.Now()
	var out []announce.Round
	for _, r := range known {
		if r.Coordinator == s.cfg.Self.String() || reopened[r.ID] || (r.State != announce.RoundOpen && r.State != announce.RoundAggregating) || !r.DeadlineTime().After(now) {
			continue
		}
		silent, err := peer.Decode(r.Coordinator)
		if err != nil || now.Sub(s.lastHeard(r.ID)) < after || s.connected(silent) {
			continue
		}
		rec, err := s.deps.Catalog.Get(content.ModelID(r.Model))
		if err != nil {
			continue
		}
		coords, _ := rec.CoordinatorSet()
		if s.firstAlive(coords, silent) == s.cfg.Self {
			out = append(out, r)
		}
	}
	return out
}

// connected reports whether this node has a live connection to p.
func (s *Service) connected(p peer.ID) bool {
	return s.deps.Host != nil && s.deps.Host.Network().Connectedness(p) == network.Connected
}

// firstAlive returns the first of coords, in order, other than silent, that is this node or
// connected to it ("" if none): the coordinator that re-opens silent's rounds, as this node sees
// it (the others see the same unless the network is split, when a round may be re-opened twice
// and trainers submit to whichever they reach).
func (s *Service) firstAlive(coords []peer.ID, silent peer.ID) peer.ID {
	for _, c := range coords {
		if c == silent {
			continue
		}
		if c == s.cfg.Self || s.connected(c) {
			return c
		}
	}
	return ""
}

// reopen opens a round with r's base model and parameters, taken from r's anchored round
// commitment when there is one (it verifies and was signed by r's coordinator), and marks r as
// failed here.
func (s *Service) reopen(ctx context.Context, r announce.Round) (id, source string, err error) {
	orig, source := s.anchoredRound(ctx, r), "the anchored round commitment"
	if orig == nil {
		orig, source = &r, "its announcement"
	}
	deadline := orig.DeadlineTime()
	if min := time.Now().Add(2 * s.cfg.Train.FailoverAfter.Duration); deadline.Before(min) {
		deadline = min // the trainers need the time to find the new round
	}
	p := OpenParams{
		ModelID: hex.EncodeToString(orig.Model), MinUpdates: orig.MinUpdates, Deadline: deadline.UTC().Format(time.RFC3339),
		Rule: orig.Rule, ClipNorm: orig.ClipNorm, ClipMode: orig.ClipMode, MaxSamples: orig.MaxSamples,
		Secure: orig.Secure, Reopens: r.ID,
		Strategy: orig.Strategy, ServerLR: orig.ServerLR, Momentum: orig.Momentum, Beta2: orig.Beta2, Tau: orig.Tau, ProxMu: orig.ProxMu,
		Epochs: orig.Epochs, BatchSize: orig.BatchSize, LearningRate: orig.LearningRate,
		Campaign: orig.Campaign, // the campaign goes on here (node/campaign adopts it)
		Config:   orig.Config,
	}
	if sp := orig.SecAgg; sp != nil {
		p.Neighbours, p.Threshold, p.Clip, p.Bits = sp.Neighbours, sp.Threshold, sp.Clip, sp.Bits
	}
	if id, err = s.Open(ctx, p); err != nil {
		return "", "", err
	}
	if nr, err := s.Get(id); err == nil {
		s.mu.Lock()
		s.reopeners[id] = nr.DeadlineTime()
		s.mu.Unlock()
		if s.deps.Campaigns != nil {
			s.deps.Campaigns.Reopened(*nr)
		}
	}
	// Here the old round ends: it failed with its coordinator. (Its coordinator alone can
	// announce it; the others learn of the failover from the new round's Reopens.)
	r.State, r.Error, r.Seq = announce.RoundFailed, fmt.Sprintf("its coordinator %s went silent; %s re-opened it as round %s from %s", r.Coordinator, s.cfg.Self, id, source), r.Seq+1
	if err := s.deps.Store.Put(store.RoundKey(r.ID), roundRecord(&r)); err != nil {
		s.log.Warn("mark the silent round failed", "round", r.ID, "err", err)
	}
	return id, source, nil
}

// anchoredRound returns r as its coordinator committed to it when it opened, or nil when no
// such commitment can be read (anchoring off, Calimero unreachable, none written).
func (s *Service) anchoredRound(ctx context.Context, r announce.Round) *announce.Round {
	if !s.deps.Anchoring.On() {
		return nil
	}
	rec, err := s.deps.Catalog.Get(content.ModelID(r.Model))
	if err != nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cs, err := s.deps.Anchoring.RoundCommitments(cctx, rec.Lineage(), r.ID)
	if err != nil {
		s.log.Info("read the round's commitments", "round", r.ID, "err", err)
		return nil
	}
	coord, _ := peer.Decode(r.Coordinator)
	for _, c := range cs {
		if c.Kind != calimero.KindRound || string(c.Signer) != string(coord) {
			continue
		}
		orig, err := announce.DecodeRound(c.Body, coord)
		if err != nil || orig.ID != r.ID || string(orig.Model) != string(r.Model) {
			continue
		}
		return orig
	}
	return nil
}

// superseded marks, on any node, the round r re-opens as failed once r is heard: its
// coordinator went silent and will not say so itself. Only a round on the same base model, run
// by another coordinator, that has not ended is marked (r's coordinator is one the lineage
// authorises: the validator checked), and for good (SupersededBy): its coordinator, back,
// cannot re-open it here. On that coordinator itself, a round it resumed after a restart ends
// (it was silent, the round runs elsewhere now); a round it has run all along is kept, and the
// claim logged.
func (s *Service) superseded(r *announce.Round) {
	if r.Reopens == "" {
		return
	}
	if lr := s.liveRound(r.Reopens); lr != nil {
		lr.mu.Lock()
		defer lr.mu.Unlock()
		if !lr.resumed || string(lr.r.Model) != string(r.Model) || (lr.r.State != announce.RoundOpen && lr.r.State != announce.RoundAggregating) {
			if lr.r.State == announce.RoundOpen || lr.r.State == announce.RoundAggregating {
				s.log.Warn("another coordinator claims to have re-opened a round this node runs", "round", r.Reopens, "by", r.Coordinator, "as", r.ID)
			}
			return
		}
		s.fail(lr, fmt.Sprintf("this coordinator went silent and %s re-opened the round as round %s", r.Coordinator, r.ID))
	}
	err := s.deps.Store.Update(func(tx *store.Tx) error {
		var old store.RoundRecord
		if err := tx.Get(store.RoundKey(r.Reopens), &old); err != nil {
			return nil // never heard of it: nothing to mark
		}
		if string(old.Model) != string(r.Model) || old.Coordinator == r.Coordinator || (old.State != announce.RoundOpen && old.State != announce.RoundAggregating) {
			return nil
		}
		// A claim about a coordinator this node is connected to is not believed: it is alive
		// (an honest coordinator re-opens only the rounds of one it cannot reach either).
		if oc, err := peer.Decode(old.Coordinator); err == nil && old.Coordinator != s.cfg.Self.String() && s.connected(oc) {
			s.log.Warn("a coordinator claims to have re-opened the round of one this node is connected to: not believed", "round", old.ID, "coordinator", old.Coordinator, "by", r.Coordinator)
			return nil
		}
		if old.Coordinator != s.cfg.Self.String() {
			old.State, old.Seq = announce.RoundFailed, old.Seq+1
			old.Error = fmt.Sprintf("its coordinator %s went silent; %s re-opened it as round %s", old.Coordinator, r.Coordinator, r.ID)
		}
		old.SupersededBy = r.ID
		return tx.Put(store.RoundKey(r.Reopens), &old)
	})
	if err != nil {
		s.log.Warn("mark a re-opened round", "round", r.Reopens, "err", err)
	}
}

// joinTraining joins the training context of a lineage this node trains for or coordinates, in
// the background, once (again after a failure): a trainer then reads the commitments of its
// rounds through its own Calimero node, and a coordinator can read a fellow coordinator's round
// commitment after that one died (only a live member can invite).
func (s *Service) joinTraining(lineage content.ModelID) {
	if !s.deps.Anchoring.On() {
		return
	}
	if _, loaded := s.joined.LoadOrStore(lineage, true); loaded {
		return
	}
	s.bg.Go(func(ctx context.Context) {
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := s.deps.Anchoring.JoinTraining(jctx, lineage); err != nil {
			s.joined.Delete(lineage)
			s.log.Info("join the lineage's training context", "lineage", hex.EncodeToString(lineage[:]), "err", err)
		}
	})
}

// reannounceReopeners announces the rounds this node re-opened that are no longer live (they
// ended) until their deadline, and forgets them after it.
func (s *Service) reannounceReopeners() {
	now := time.Now()
	s.mu.Lock()
	var ids []string
	for id, deadline := range s.reopeners {
		switch {
		case !deadline.After(now):
			delete(s.reopeners, id)
		case s.live[id] == nil:
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		if r, err := s.Get(id); err == nil {
			s.announce(*r)
		}
	}
}
