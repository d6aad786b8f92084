package campaign

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"time"

	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/store"
)

// Campaign failover. Every round of a campaign carries the campaign's tag (announce.CampaignTag:
// its ID, the round's number, the stopping rules, the best accuracy so far, the reward), signed
// with the round by its coordinator and anchored with the round commitment. When the
// coordinator goes silent, node/rounds' failover re-opens its open round on the first live
// coordinator of the lineage, tag and all; this file makes that coordinator adopt the campaign:
// it records it under the same ID, with the rounds it heard of before, and runs the rest. The
// silent coordinator, back, sees the re-opened round and hands the campaign over (it only pays
// the rewards it owes). A reward the silent coordinator chose is paid by the adopter only up to
// its own train.adopt_max_reward.

// Reopened is told by the rounds service that this node re-opened r for a silent coordinator:
// it adopts r's campaign, in the background. (Start adopts those re-opened before it ran.)
func (s *Service) Reopened(r announce.Round) {
	if r.Campaign == nil || s.ctx.Err() != nil {
		return
	}
	s.wg.Go(s.adoptAll)
}

// adoptAll adopts the campaign of every round this node re-opened that it has no record of.
func (s *Service) adoptAll() {
	if s.cfg.Self == "" {
		return
	}
	s.adoptMu.Lock()
	defer s.adoptMu.Unlock()
	known, err := s.rounds.List(nil)
	if err != nil {
		s.log.Warn("list rounds to adopt campaigns", "err", err)
		return
	}
	for _, r := range known {
		if r.Coordinator != s.cfg.Self || r.Campaign == nil || r.Reopens == "" {
			continue
		}
		var rec *Record
		var stored Record
		switch err := s.store.Get(store.CampaignKey(r.Campaign.ID), &stored); {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			s.log.Warn("read campaign", "campaign", r.Campaign.ID, "err", err)
			continue
		case slices.ContainsFunc(stored.Rounds, func(e RoundEntry) bool { return e.RoundID == r.ID }):
			continue // adopted already
		default:
			rec = &stored // this node ran it once and handed it over
		}
		adopted, err := s.adopt(r, rec, known)
		if err != nil {
			s.log.Warn("adopt campaign", "campaign", r.Campaign.ID, "round", r.ID, "err", err)
			continue
		}
		s.log.Info("campaign adopted: its coordinator went silent", "campaign", adopted.ID, "from", adopted.AdoptedFrom, "round", r.ID,
			"n", r.Campaign.Index, "of", r.Campaign.Rounds, "reward", adopted.Params.Reward)
		s.run(adopted.ID, false)
	}
}

// adopt records the campaign of r, a round this node re-opened, from r's tag and the campaign's
// rounds this node heard of (known); prev is this node's earlier record of it, if any (it ran
// the campaign once and handed it over), whose rounds and payouts it keeps.
func (s *Service) adopt(r announce.Round, prev *Record, known []announce.Round) (*Record, error) {
	tag := r.Campaign
	var silent string
	var history []announce.Round
	for _, o := range known {
		if o.Campaign == nil || o.Campaign.ID != tag.ID || o.ID == r.ID {
			continue
		}
		history = append(history, o)
		if o.ID == r.Reopens {
			silent = o.Coordinator
		}
	}
	slices.SortStableFunc(history, func(a, b announce.Round) int {
		return cmp.Or(cmp.Compare(a.Campaign.Index, b.Campaign.Index), cmp.Compare(a.OpenedAt, b.OpenedAt))
	})
	now := time.Now().UnixMilli()
	rec := prev
	if rec == nil {
		rec = &Record{ID: tag.ID, CreatedAt: now, Rounds: []RoundEntry{}}
	}
	have := map[string]bool{}
	for _, e := range rec.Rounds {
		have[e.RoundID] = true
	}
	for _, o := range history {
		if have[o.ID] {
			continue
		}
		e := RoundEntry{RoundID: o.ID, BaseModel: hex.EncodeToString(o.Model), State: o.State, Error: o.Error, Index: o.Campaign.Index, Coordinator: o.Coordinator}
		if o.Coordinator == s.cfg.Self {
			e.Coordinator = ""
		}
		if o.NewModel != nil {
			e.NewModel = hex.EncodeToString(o.NewModel)
		}
		rec.Rounds = append(rec.Rounds, e)
	}
	rec.Rounds = append(rec.Rounds, RoundEntry{RoundID: r.ID, BaseModel: hex.EncodeToString(r.Model), State: announce.RoundOpen, Index: tag.Index})
	slices.SortStableFunc(rec.Rounds, func(a, b RoundEntry) int { return cmp.Compare(a.Index, b.Index) })

	first := hex.EncodeToString(r.Model)
	if len(history) > 0 {
		first = hex.EncodeToString(history[0].Model)
	}
	if prev != nil {
		first = prev.Params.ModelID
	}
	deadline := "10m"
	if tag.RoundSeconds > 0 {
		deadline = (time.Duration(tag.RoundSeconds) * time.Second).String()
	}
	rec.Params = StoredParams{ModelID: first, Rounds: tag.Rounds, MinUpdates: r.MinUpdates, Deadline: deadline, Rule: r.Rule,
		ClipNorm: r.ClipNorm, ClipMode: r.ClipMode, MaxSamples: r.MaxSamples, Secure: r.Secure,
		TargetAccuracy: tag.Target, Patience: tag.Patience,
		Strategy: r.Strategy, ServerLR: r.ServerLR, Momentum: r.Momentum, Beta2: r.Beta2, Tau: r.Tau, ProxMu: r.ProxMu,
		Epochs: r.Epochs, BatchSize: r.BatchSize, LearningRate: undecayed(r.LearningRate, tag), LRDecay: tag.LRDecay, Config: r.Config}
	if r.SecAgg != nil {
		rec.Params.Clip = r.SecAgg.Clip
	}
	rec.Params.Reward, rec.Note = s.adoptedReward(tag.Reward)
	rec.State, rec.Why = Running, ""
	rec.Current, rec.Best, rec.SinceBest, rec.Failures = hex.EncodeToString(r.Model), tag.Best, tag.SinceBest, 0
	rec.AdoptedFrom = silent
	if err := s.save(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// adoptedReward is the reward this node pays in a campaign it adopts whose coordinator chose
// want (base units): at most Config.AdoptMaxReward (tokens); note says when that is less.
func (s *Service) adoptedReward(want string) (reward, note string) {
	w, ok := new(big.Int).SetString(want, 10)
	if want == "" || !ok || w.Sign() <= 0 {
		return "", ""
	}
	none := func(why string) (string, string) {
		return "", fmt.Sprintf("the campaign's reward of %s base units is not paid by this coordinator: %s", want, why)
	}
	if s.ledger == nil || s.accounts == nil || s.catalog == nil {
		return none("it has no ledger account")
	}
	if s.cfg.AdoptMaxReward == "" {
		return none("train.adopt_max_reward is 0")
	}
	lc, err := s.ledger.Client()
	if err != nil {
		return none(err.Error())
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	tok, err := lc.Token(ctx)
	if err != nil {
		return none(fmt.Sprintf("the ledger's decimals are unknown (%v)", err))
	}
	c, err := icp.ParseTokens(s.cfg.AdoptMaxReward, tok.Decimals)
	switch {
	case err != nil:
		return none(err.Error())
	case c.Sign() <= 0:
		return none("train.adopt_max_reward is 0")
	case w.Cmp(c) > 0:
		return c.String(), fmt.Sprintf("this coordinator pays %s of the campaign's reward of %s (train.adopt_max_reward)", tok.Format(c), tok.Format(w))
	}
	return want, ""
}

// reopenedBy returns the round that re-opens round id on another coordinator, if this node has
// heard of one.
func (s *Service) reopenedBy(id string) *announce.Round {
	known, err := s.rounds.List(nil)
	if err != nil {
		return nil
	}
	for _, r := range known {
		if r.Reopens == id && r.Coordinator != s.cfg.Self && r.Campaign != nil {
			return &r
		}
	}
	return nil
}

// takenOver returns a round of campaign rec that another coordinator runs as the campaign's
// own: one that re-opens a round of rec, or a later round than rec's last.
func (s *Service) takenOver(rec *Record) *announce.Round {
	known, err := s.rounds.List(nil)
	if err != nil {
		return nil
	}
	mine := map[string]bool{}
	for _, e := range rec.Rounds {
		if e.Coordinator == "" && e.RoundID != "" {
			mine[e.RoundID] = true
		}
	}
	for _, r := range known {
		if r.Campaign == nil || r.Campaign.ID != rec.ID || r.Coordinator == s.cfg.Self {
			continue
		}
		if mine[r.Reopens] || r.Campaign.Index > rec.last() {
			return &r
		}
	}
	return nil
}

// undecayed is the campaign's learning rate from lr, that of its round tag.Index (decayed by
// tag.LRDecay^(Index−1)).
func undecayed(lr float64, tag *announce.CampaignTag) float64 {
	if tag.LRDecay <= 0 || lr <= 0 || tag.Index <= 1 {
		return lr
	}
	return lr / math.Pow(tag.LRDecay, float64(tag.Index-1))
}
