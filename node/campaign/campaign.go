// Package campaign runs federated campaigns on a coordinator: N rounds back to back on one
// lineage, each on the version the previous round published, until N rounds ran or a stopping
// rule holds (a target accuracy on train.eval_data, or no improvement for Patience rounds). A
// round whose aggregate scores too far below its base is not published (node/rounds' evaluation
// floor): the campaign keeps the previous version, says so with both scores, and goes on from
// it. A campaign is a store record, updated as each round ends, so a restarted coordinator
// resumes it where it was (a round it was waiting for keeps running, or has ended, in the rounds
// service).
package campaign

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/internal/failpoint"
	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/store"
)

// Rounds is what a campaign uses of the rounds service.
type Rounds interface {
	Open(ctx context.Context, p rounds.OpenParams) (string, error)
	// List returns the rounds this node knows (its own and those heard from the network).
	List(model *content.ModelID) ([]announce.Round, error)
	Get(id string) (*announce.Round, error)
	Report(ctx context.Context, id string) (*store.ReportRecord, error)
}

// Campaign states.
const (
	Running = "running"
	Done    = "done"    // ran its rounds, or a stopping rule held
	Stopped = "stopped" // campaign_stop
	Failed  = "failed"  // maxFailures rounds in a row failed for another reason than the floor
	// HandedOver: another coordinator of the lineage re-opened this campaign's round after this
	// node went silent, and runs the campaign from there (adopt.go); this node only settles
	// the rewards it owes.
	HandedOver = "handed_over"
)

// maxFailures ends a campaign whose rounds keep failing (no quorum, no coordinator key...).
const maxFailures = 3

// MaxRounds bounds a campaign.
const MaxRounds = announce.MaxCampaignRounds

// Params describe a campaign: the template of its rounds (Round.ModelID is the version it starts
// from; Round.Deadline, a duration, is each round's), how many rounds, and when to stop early.
type Params struct {
	Round          rounds.OpenParams
	Rounds         int     // 1..MaxRounds
	TargetAccuracy float64 // stop once a version scores at least this on eval_data (0: never)
	Patience       int     // stop after this many rounds without a better version (0: never)
	// Reward is paid to each accepted contributor of each published round, in the ledger's base
	// units, from this coordinator's account ("" or "0": none; payout.go).
	Reward string
	// LRDecay multiplies the rounds' learning_rate by itself once per round: the campaign's
	// round n (from 1, RoundEntry.Index; a round the evaluation floor refused or that could not
	// open counts too) trains with learning_rate·LRDecay^(n−1). In (0, 1]; 0: no decay. It
	// needs a learning_rate.
	LRDecay float64
}

// Record is a campaign as stored.
type Record struct {
	ID        string       `cbor:"id"`
	Params    StoredParams `cbor:"params"`
	State     string       `cbor:"state"`
	Why       string       `cbor:"why,omitempty"` // why it ended
	Current   string       `cbor:"current"`       // the version the next round opens on
	Best      float64      `cbor:"best,omitempty"`
	SinceBest int          `cbor:"since_best,omitempty"`
	Failures  int          `cbor:"failures,omitempty"` // in a row
	Rounds    []RoundEntry `cbor:"rounds"`
	CreatedAt int64        `cbor:"created_at"` // unix milliseconds
	UpdatedAt int64        `cbor:"updated_at"`
	// AdoptedFrom is the coordinator this node took the campaign over from (adopt.go), and
	// Note what changed when it did (a reward this node does not pay).
	AdoptedFrom string `cbor:"adopted_from,omitempty"`
	Note        string `cbor:"note,omitempty"`
}

// StoredParams are Params in the store's form.
type StoredParams struct {
	ModelID        string  `cbor:"model_id"`
	Rounds         int     `cbor:"rounds"`
	MinUpdates     int     `cbor:"min_updates"`
	Deadline       string  `cbor:"deadline"`
	Rule           string  `cbor:"rule"`
	ClipNorm       float64 `cbor:"clip_norm,omitempty"`
	ClipMode       string  `cbor:"clip_mode,omitempty"`
	MaxSamples     uint64  `cbor:"max_samples,omitempty"`
	Secure         bool    `cbor:"secure,omitempty"`
	Clip           float64 `cbor:"clip,omitempty"`
	TargetAccuracy float64 `cbor:"target_accuracy,omitempty"`
	Patience       int     `cbor:"patience,omitempty"`
	Reward         string  `cbor:"reward,omitempty"`
	// The rounds' strategy (rounds.OpenParams).
	Strategy string  `cbor:"strategy,omitempty"`
	ServerLR float64 `cbor:"server_lr,omitempty"`
	Momentum float64 `cbor:"momentum,omitempty"`
	Beta2    float64 `cbor:"beta2,omitempty"`
	Tau      float64 `cbor:"tau,omitempty"`
	ProxMu   float64 `cbor:"prox_mu,omitempty"`
	// The trainers' hyperparameters for every round (0: each trainer's own).
	Epochs       int     `cbor:"epochs,omitempty"`
	BatchSize    int     `cbor:"batch_size,omitempty"`
	LearningRate float64 `cbor:"learning_rate,omitempty"`
	// Config is every round's free-form configuration (rounds.OpenParams.Config).
	Config map[string]any `cbor:"config,omitempty"`
	// LRDecay is Params.LRDecay (0: none).
	LRDecay float64 `cbor:"lr_decay,omitempty"`
}

// RoundEntry is one round of a campaign.
type RoundEntry struct {
	RoundID      string  `cbor:"round_id"`
	BaseModel    string  `cbor:"base_model"`
	NewModel     string  `cbor:"new_model,omitempty"`
	State        string  `cbor:"state"` // open (running) | done | failed
	Accuracy     float64 `cbor:"accuracy,omitempty"`
	BaseAccuracy float64 `cbor:"base_accuracy,omitempty"`
	Contributors int     `cbor:"contributors,omitempty"`
	Kept         bool    `cbor:"kept,omitempty"` // the aggregate scored too low: the previous version stays
	Error        string  `cbor:"error,omitempty"`
	// The accepted contributors (peer IDs) and, with a reward, what each was paid; PaidOut once
	// every reward of the round is done.
	ContributorIDs []string `cbor:"contributor_ids,omitempty"`
	Payouts        []Payout `cbor:"payouts,omitempty"`
	PaidOut        bool     `cbor:"paid_out,omitempty"`
	// Index is the round's number in the campaign, from 1 (a round re-opened after its
	// coordinator went silent keeps the number of the one it re-opens; 0 in records written
	// before: the entry's position). Coordinator is who ran it ("": this node).
	Index       int    `cbor:"index,omitempty"`
	Coordinator string `cbor:"coordinator,omitempty"`
}

// Number is the number in the campaign of rec's i-th round (its position, in records written
// before RoundEntry.Index).
func (rec *Record) Number(i int) int {
	if rec.Rounds[i].Index > 0 {
		return rec.Rounds[i].Index
	}
	return i + 1
}

// last is the number of rec's last round (0: none yet).
func (rec *Record) last() int {
	if len(rec.Rounds) == 0 {
		return 0
	}
	return rec.Number(len(rec.Rounds) - 1)
}

// tag is what the campaign's next round carries for the lineage's other coordinators.
func (rec *Record) tag(index int) *announce.CampaignTag {
	t := &announce.CampaignTag{ID: rec.ID, Index: index, Rounds: rec.Params.Rounds, Target: rec.Params.TargetAccuracy, Patience: rec.Params.Patience,
		Best: rec.Best, SinceBest: rec.SinceBest, LRDecay: rec.Params.LRDecay}
	if rec.Params.Reward != "0" {
		t.Reward = rec.Params.Reward
	}
	if d, err := time.ParseDuration(rec.Params.Deadline); err == nil {
		t.RoundSeconds = int64(d / time.Second)
	}
	return t
}

func (p StoredParams) round(model string) rounds.OpenParams {
	return rounds.OpenParams{ModelID: model, MinUpdates: p.MinUpdates, Deadline: p.Deadline, Rule: p.Rule, ClipNorm: p.ClipNorm,
		ClipMode: p.ClipMode, MaxSamples: p.MaxSamples, Secure: p.Secure, Clip: p.Clip,
		Strategy: p.Strategy, ServerLR: p.ServerLR, Momentum: p.Momentum, Beta2: p.Beta2, Tau: p.Tau, ProxMu: p.ProxMu,
		Epochs: p.Epochs, BatchSize: p.BatchSize, LearningRate: p.LearningRate, Config: p.Config}
}

// MinDecayedLearningRate is the floor of a decayed learning rate, so a long decay never reaches 0
// (which a round reads as "the trainer's own").
const MinDecayedLearningRate = 1e-9

// roundAt is round for the campaign's round number n (from 1, RoundEntry.Index): its learning
// rate decayed by LRDecay^(n−1).
func (p StoredParams) roundAt(model string, n int) rounds.OpenParams {
	o := p.round(model)
	if p.LRDecay > 0 && o.LearningRate > 0 && n > 1 {
		o.LearningRate = max(o.LearningRate*math.Pow(p.LRDecay, float64(n-1)), MinDecayedLearningRate)
	}
	return o
}

// Config configures the service.
type Config struct {
	// Poll is how often a running campaign looks at its round (0: 500ms).
	Poll time.Duration
	// Log is the subsystem's logger (nil: discard).
	Log *slog.Logger
	// Now is the clock rewards are stamped and aged with (nil: time.Now).
	Now func() time.Time
	// Self is this node's peer ID: the coordinator of the rounds it opens.
	Self string
	// AdoptMaxReward caps, in base units, the reward this node pays per accepted update in a
	// campaign it takes over from a silent coordinator ("" or "0": it pays none; config
	// train.adopt_max_reward): the other coordinator chose that reward, not this node's operator.
	AdoptMaxReward string
	// Settle is how long a campaign resumed in the middle of a round listens to the network
	// before it opens another round, so that it hears whether another coordinator took it over
	// (0: 25s, two round re-announcements).
	Settle time.Duration
}

// loopHandle is a running campaign's loop.
type loopHandle struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Deps are the services a campaign uses; Ledger, Accounts and Catalog only for rewards.
type Deps struct {
	Store    *store.Store
	Rounds   Rounds
	Ledger   Ledger
	Accounts Accounts
	Catalog  Catalog
}

// Service runs a coordinator's campaigns.
type Service struct {
	cfg      Config
	store    *store.Store
	rounds   Rounds
	ledger   Ledger
	accounts Accounts
	catalog  Catalog
	log      *slog.Logger

	mu      sync.Mutex
	running map[string]*loopHandle
	adoptMu sync.Mutex // one adoption pass at a time
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New returns the service; it runs nothing until Start.
func New(cfg Config, d Deps) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 25 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{cfg: cfg, store: d.Store, rounds: d.Rounds, ledger: d.Ledger, accounts: d.Accounts, catalog: d.Catalog, log: cfg.Log,
		running: map[string]*loopHandle{}, ctx: ctx, cancel: cancel}
}

// Start resumes the campaigns that were running when the node stopped.
func (s *Service) Start(context.Context) error {
	recs, err := s.List()
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.State == Running || r.owes() {
			s.run(r.ID, r.State == Running && r.last() > 0 && r.Rounds[len(r.Rounds)-1].State == announce.RoundOpen)
		}
	}
	s.wg.Go(s.adoptAll) // rounds re-opened here before a restart
	return nil
}

// owes reports whether rec has rewards left to pay.
func (rec *Record) owes() bool {
	if rec.Params.Reward == "" || rec.Params.Reward == "0" {
		return false
	}
	for _, e := range rec.Rounds {
		if e.State == announce.RoundDone && !e.PaidOut && e.Coordinator == "" {
			return true
		}
	}
	return false
}

// Close stops running campaigns (they resume at the next Start). It is idempotent.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// Begin validates p, records the campaign and starts its first round; it returns the campaign's
// ID. Refusals are *apierr.Error values; the first round's refusal (a bad model, a node that is
// not its coordinator) is returned as it is and no campaign is recorded.
func (s *Service) Begin(ctx context.Context, p Params) (*Record, error) {
	switch {
	case p.Rounds < 1 || p.Rounds > MaxRounds:
		return nil, apierr.Errorf(apierr.InvalidParams, "rounds must be 1 to %d", MaxRounds)
	case p.TargetAccuracy < 0 || p.TargetAccuracy > 1:
		return nil, apierr.Errorf(apierr.InvalidParams, "target_accuracy must be a fraction from 0 to 1 (0: none)")
	case p.Patience < 0 || p.Patience > MaxRounds:
		return nil, apierr.Errorf(apierr.InvalidParams, "patience must be 0 (none) to %d rounds", MaxRounds)
	case math.IsNaN(p.LRDecay) || p.LRDecay < 0 || p.LRDecay > 1:
		return nil, apierr.Errorf(apierr.InvalidParams, "lr_decay %g must be a factor in (0, 1] (0: no decay)", p.LRDecay)
	case p.LRDecay != 0 && p.Round.LearningRate == 0:
		return nil, apierr.Errorf(apierr.InvalidParams, "lr_decay decays the campaign's learning_rate: set learning_rate too")
	}
	if p.Reward != "" {
		r, ok := new(big.Int).SetString(p.Reward, 10)
		switch {
		case !ok || r.Sign() < 0:
			return nil, apierr.Errorf(apierr.InvalidParams, "reward %q must be a whole number of base units", p.Reward)
		case r.Sign() > 0 && (s.ledger == nil || s.accounts == nil || s.catalog == nil):
			return nil, apierr.Errorf(apierr.Role, "this node cannot pay rewards: it has no ledger account or is not a coordinator")
		}
	}
	if err := announce.CheckConfig(p.Round.Config); err != nil {
		return nil, apierr.Errorf(apierr.InvalidParams, "%v", err)
	}
	if p.Round.Deadline == "" {
		p.Round.Deadline = "10m"
	}
	if _, err := time.ParseDuration(p.Round.Deadline); err != nil {
		return nil, apierr.Errorf(apierr.InvalidParams, "a campaign's deadline is each round's, a duration such as \"10m\", not %q", p.Round.Deadline)
	}
	var id [8]byte
	rand.Read(id[:])
	now := time.Now().UnixMilli()
	rec := &Record{
		ID: hex.EncodeToString(id[:]), State: Running, Current: p.Round.ModelID, CreatedAt: now, UpdatedAt: now, Rounds: []RoundEntry{},
		Params: StoredParams{ModelID: p.Round.ModelID, Rounds: p.Rounds, MinUpdates: p.Round.MinUpdates, Deadline: p.Round.Deadline, Rule: p.Round.Rule,
			ClipNorm: p.Round.ClipNorm, ClipMode: p.Round.ClipMode, MaxSamples: p.Round.MaxSamples, Secure: p.Round.Secure, Clip: p.Round.Clip,
			TargetAccuracy: p.TargetAccuracy, Patience: p.Patience, Reward: p.Reward,
			Strategy: p.Round.Strategy, ServerLR: p.Round.ServerLR, Momentum: p.Round.Momentum, Beta2: p.Round.Beta2, Tau: p.Round.Tau, ProxMu: p.Round.ProxMu,
			Epochs: p.Round.Epochs, BatchSize: p.Round.BatchSize, LearningRate: p.Round.LearningRate, Config: p.Round.Config, LRDecay: p.LRDecay},
	}
	// The first round opens here, so a campaign that cannot run is refused, not recorded.
	first := rec.Params.roundAt(rec.Current, 1)
	first.Campaign = rec.tag(1)
	round, err := s.rounds.Open(ctx, first)
	if err != nil {
		return nil, err
	}
	rec.Rounds = append(rec.Rounds, RoundEntry{RoundID: round, BaseModel: rec.Current, State: announce.RoundOpen, Index: 1})
	if err := s.save(rec); err != nil {
		return nil, err
	}
	s.log.Info("campaign started", "campaign", rec.ID, "model", rec.Current, "rounds", p.Rounds, "round", round)
	s.run(rec.ID, false)
	return rec, nil
}

// Get returns a campaign (not found: an *apierr.Error).
func (s *Service) Get(id string) (*Record, error) {
	var rec Record
	if err := s.store.Get(store.CampaignKey(id), &rec); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.Errorf(apierr.NotFound, "campaign %q is not known here", id)
		}
		return nil, err
	}
	return &rec, nil
}

// List returns every campaign of this node, oldest first.
func (s *Service) List() ([]*Record, error) {
	var out []*Record
	err := s.store.Scan(store.CampaignPrefix(), func(_ store.Key, decode func(any) error) error {
		var rec Record
		if err := decode(&rec); err != nil {
			return err
		}
		out = append(out, &rec)
		return nil
	})
	slices.SortStableFunc(out, func(a, b *Record) int { return cmp.Compare(a.CreatedAt, b.CreatedAt) })
	return out, err
}

// Stop ends a running campaign after the round it runs (which goes on in the rounds service).
func (s *Service) Stop(id string) (*Record, error) {
	s.mu.Lock()
	h := s.running[id]
	s.mu.Unlock()
	if h != nil {
		h.cancel()
		<-h.done // the campaign's loop has returned
	}
	rec, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	if rec.State == Running {
		rec.State, rec.Why = Stopped, "stopped by campaign_stop"
		if err := s.save(rec); err != nil {
			return nil, err
		}
		s.log.Info("campaign stopped", "campaign", id)
	}
	return rec, nil
}

func (s *Service) save(rec *Record) error {
	rec.UpdatedAt = time.Now().UnixMilli()
	return s.store.Put(store.CampaignKey(rec.ID), rec)
}

// run starts the loop of campaign id unless it runs already; resumed says it was in the middle
// of a round when this node stopped (it settles before it opens another: Config.Settle).
func (s *Service) run(id string, resumed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.running[id]; ok || s.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	h := &loopHandle{cancel: cancel, done: make(chan struct{})}
	s.running[id] = h
	s.wg.Go(func() {
		defer func() {
			s.mu.Lock()
			delete(s.running, id)
			s.mu.Unlock()
			cancel()
			close(h.done)
		}()
		if resumed {
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.cfg.Settle):
			}
		}
		if err := s.loop(ctx, id, resumed); err != nil && ctx.Err() == nil {
			s.log.Error("campaign", "campaign", id, "err", err)
		}
	})
}

// loop waits for the campaign's current round to end, records it, pays its rewards, and opens
// the next until the campaign ends; an ended campaign that still owes rewards retries them.
//
// Only a campaign resumed in the middle of a round (this node was down, perhaps long enough for
// another coordinator to take it over) looks for a take-over, and only until that round is
// recorded: a coordinator that has run its campaign all along does not hand it over because
// another claims to have re-opened one of its rounds.
func (s *Service) loop(ctx context.Context, id string, resumed bool) error {
	for {
		rec, err := s.Get(id)
		if err != nil {
			return err
		}
		if rec.State == Running {
			last := &rec.Rounds[len(rec.Rounds)-1]
			if last.State == announce.RoundOpen {
				r, err := s.wait(ctx, last.RoundID)
				if err != nil {
					return err
				}
				s.record(ctx, rec, last, r, resumed)
			}
		}
		// Rewards, before anything else happens (after a crash: the ones not done yet).
		owed, err := s.settle(ctx, rec)
		if err != nil {
			return err
		}
		if rec.State == Running && resumed {
			if by := s.takenOver(rec); by != nil {
				rec.State, rec.Why = HandedOver, fmt.Sprintf("coordinator %s runs it now, from its round %s (campaign round %d)", by.Coordinator, by.ID, by.Campaign.Index)
			}
		}
		if s.finished(rec) {
			if err := s.save(rec); err != nil {
				return err
			}
			if !owed {
				s.log.Info("campaign ended", "campaign", id, "state", rec.State, "why", rec.Why, "model", rec.Current)
				return nil
			}
			if !s.pause(ctx) { // the ledger may come back
				return nil
			}
			continue
		}
		next := rec.last() + 1
		p := rec.Params.roundAt(rec.Current, next)
		p.Campaign = rec.tag(next)
		round, err := s.rounds.Open(ctx, p)
		if err != nil {
			rec.Failures++
			rec.Rounds = append(rec.Rounds, RoundEntry{BaseModel: rec.Current, State: announce.RoundFailed, Error: err.Error(), Index: next})
			if rec.Failures >= maxFailures {
				rec.State, rec.Why = Failed, fmt.Sprintf("%d rounds in a row could not run; the last: %v", rec.Failures, err)
			}
			if err := s.save(rec); err != nil {
				return err
			}
			if rec.State == Failed && !owed {
				return nil
			}
			if !s.pause(ctx) { // the cause may pass (a key share holder back, a trainer joining)
				return nil
			}
			continue
		}
		rec.Rounds = append(rec.Rounds, RoundEntry{RoundID: round, BaseModel: rec.Current, State: announce.RoundOpen, Index: next})
		if err := s.save(rec); err != nil {
			return err
		}
		s.log.Info("campaign round opened", "campaign", id, "round", round, "n", next, "of", rec.Params.Rounds, "model", rec.Current)
		resumed = false                                                // a round of its own, opened since it is back
		failpoint.Crash(fmt.Sprintf("campaign-round-%d-opened", next)) // tests kill the coordinator with a round of its campaign open
	}
}

// pause waits before a retry; false when the campaign's loop must return.
func (s *Service) pause(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(10 * s.cfg.Poll):
		return true
	}
}

// settle pays the rewards of rec's published rounds that are not paid yet, saving rec as it
// goes; owed says some could not be paid now (they are retried).
func (s *Service) settle(ctx context.Context, rec *Record) (owed bool, err error) {
	if rec.Params.Reward == "" || rec.Params.Reward == "0" {
		return false, nil
	}
	for i := range rec.Rounds {
		e := &rec.Rounds[i]
		if e.State != announce.RoundDone || e.PaidOut || e.Coordinator != "" {
			continue
		}
		perr := s.payouts(ctx, rec, e, e.ContributorIDs)
		if err := s.save(rec); err != nil {
			return true, err
		}
		if perr != nil {
			s.log.Warn("pay the round's rewards", "campaign", rec.ID, "round", e.RoundID, "err", perr)
			return true, nil
		}
	}
	return false, nil
}

// wait polls round id until it ends (its coordinator is this node).
func (s *Service) wait(ctx context.Context, id string) (*announce.Round, error) {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		r, err := s.rounds.Get(id)
		if err != nil {
			return nil, err
		}
		if r.State == announce.RoundDone || r.State == announce.RoundFailed {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// record writes an ended round into its entry and moves the campaign on: a published version
// becomes the current one; an aggregate the evaluation floor refused keeps the previous one.
func (s *Service) record(ctx context.Context, rec *Record, e *RoundEntry, r *announce.Round, resumed bool) {
	e.State, e.Error = r.State, r.Error
	rep, _ := s.rounds.Report(ctx, r.ID)
	if rep != nil {
		e.Accuracy, e.BaseAccuracy = rep.Metrics["accuracy"], rep.Metrics["base_accuracy"]
		if rep.Secure {
			e.ContributorIDs = append([]string(nil), rep.Contributors...)
		} else {
			for _, p := range rep.Participants {
				if p.Accepted {
					e.ContributorIDs = append(e.ContributorIDs, p.PeerID)
				}
			}
		}
		e.Contributors = len(e.ContributorIDs)
	}
	var by *announce.Round // the round of another coordinator that re-opened r, after this node was down
	if resumed && r.State == announce.RoundFailed {
		by = s.reopenedBy(r.ID)
	}
	switch {
	case r.State == announce.RoundDone:
		e.NewModel = hex.EncodeToString(r.NewModel)
		rec.Current, rec.Failures = e.NewModel, 0
		if e.Accuracy > rec.Best {
			rec.Best, rec.SinceBest = e.Accuracy, 0
		} else {
			rec.SinceBest++
		}
	case by != nil: // another coordinator took the round, and the campaign, over
		e.Error = r.Error
		rec.State, rec.Why = HandedOver, fmt.Sprintf("coordinator %s re-opened round %s as its round %s after this node went silent, and runs the campaign now", by.Coordinator, r.ID, by.ID)
	case strings.Contains(r.Error, "is not published"): // the evaluation floor: keep the previous version
		e.Kept, rec.Failures = true, 0
		e.Error = "kept previous version: " + r.Error
		rec.SinceBest++
	default:
		rec.Failures++
		if rec.Failures >= maxFailures {
			rec.State, rec.Why = Failed, fmt.Sprintf("%d rounds in a row failed; the last: %s", rec.Failures, r.Error)
		}
	}
	if err := s.save(rec); err != nil {
		s.log.Warn("save campaign", "campaign", rec.ID, "err", err)
	}
	s.log.Info("campaign round ended", "campaign", rec.ID, "round", r.ID, "state", r.State, "accuracy", e.Accuracy, "kept_previous", e.Kept)
}

// finished applies the stopping rules; it sets the campaign's state and reason when it ends.
func (s *Service) finished(rec *Record) bool {
	switch {
	case rec.State != Running:
		return true
	case rec.Params.TargetAccuracy > 0 && rec.Best >= rec.Params.TargetAccuracy:
		rec.State, rec.Why = Done, fmt.Sprintf("reached the target accuracy %.4f (%.4f)", rec.Params.TargetAccuracy, rec.Best)
	case rec.Params.Patience > 0 && rec.SinceBest >= rec.Params.Patience:
		rec.State, rec.Why = Done, fmt.Sprintf("no better version in %d rounds", rec.SinceBest)
	case rec.last() >= rec.Params.Rounds:
		rec.State, rec.Why = Done, fmt.Sprintf("ran its %d rounds", rec.Params.Rounds)
	default:
		return false
	}
	return true
}
