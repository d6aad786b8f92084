package rounds

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"golang.org/x/sync/semaphore"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/fetch"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/node/internal/gossip"
	"github.com/califusion/califusion/node/internal/limit"
	"github.com/califusion/califusion/node/internal/tasks"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Datadir folders of the service: a coordinator's accepted updates of open rounds (RoundsDir);
// a trainer's trained updates (UpdatesDir) and the scratch space of exec hooks, which holds a
// decrypted model only while the hook runs (TrainDir).
const (
	RoundsDir  = "rounds"
	UpdatesDir = "updates"
	TrainDir   = "train"
)

// reannounceEvery is how often a coordinator repeats its open rounds for late joiners.
const reannounceEvery = 10 * time.Second

// Service is the node's training-round service. Every node follows round announcements; a
// coordinator runs its own rounds: it verifies and keeps updates, aggregates on quorum or at the
// deadline, publishes the aggregate as a new model version, anchors the commitments and writes
// the report (submissions.go, aggregation.go). The trainer's side is in training.go.
type Service struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	bg *tasks.Group // receive, resume, reannounce, deadlines and aggregations; Close waits for them

	topic  *gossip.Topic   // nil until Start, and without PubSub
	server *updates.Server // a started coordinator's updates server

	roundLimit *limit.PerPeer // round announcements per coordinator

	mu      sync.Mutex
	live    map[string]*liveRound   // rounds this node coordinates that have not ended
	holding map[content.ModelID]int // rounds being opened on a threshold version, collecting its key (threshold.go)
	heard   map[string]time.Time    // when each open round of another coordinator was last announced (failover.go)
	// reopeners are the rounds this node re-opened for a silent coordinator, announced until
	// their deadline even once ended, so that coordinator hears of them when it is back.
	reopeners map[string]time.Time
	opening   map[string]chan struct{} // rounds announced but not live yet, closed when they are (threshold.go)
	joined    sync.Map                 // lineages whose training context this node joined or is joining (failover.go)
	// inputMem bounds the masked inputs of secure rounds read at once (secure_session.go).
	inputMem *semaphore.Weighted

	startOnce, closeOnce sync.Once
}

// liveRound is a round this node coordinates, with its decrypted base model.
type liveRound struct {
	mu   sync.Mutex // serialises submissions, state changes and aggregation
	r    announce.Round
	base *fl.File
	sums fl.Folder // rules that fold (fedavg): every accepted update, folded in as it arrives
	// claimed are the trainers whose submission is being checked right now
	claimed map[string]bool
	timer   *time.Timer
	ended   chan struct{} // closed when the round is done or failed
	sec     *secureRound  // a secure round's SecAgg state (secure.go); nil for a plain round
	// resumed: the round was resumed after this node restarted (it may have been silent long
	// enough for another coordinator to re-open it: failover.go).
	resumed bool
}

// New builds the service; it starts nothing. Open, CloseRound, Get, List, Report, Train and
// Submit work before Start (without a rounds topic nothing is announced).
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Store == nil {
		return nil, errors.New("rounds: no store")
	}
	if cfg.RoundsDir == "" || cfg.UpdatesDir == "" || cfg.TrainDir == "" {
		return nil, errors.New("rounds: the rounds, updates and train folders must be set")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		cfg: cfg, deps: deps, log: log.With("subsys", "rounds"),
		bg:         tasks.New(context.Background()),
		live:       map[string]*liveRound{},
		holding:    map[content.ModelID]int{},
		heard:      map[string]time.Time{},
		reopeners:  map[string]time.Time{},
		opening:    map[string]chan struct{}{},
		inputMem:   semaphore.NewWeighted(inputMemory),
		roundLimit: limit.New(roundBurst, roundEvery, limiterPeers),
	}, nil
}

// Start joins the rounds topic (when there is a PubSub) and, on a coordinator, serves the updates
// protocol (when there is a kex server), resumes its unfinished rounds and repeats its open ones.
func (s *Service) Start(ctx context.Context) error {
	err := errors.New("rounds: already started")
	s.startOnce.Do(func() {
		err = nil
		if s.deps.PubSub != nil {
			topic, jerr := gossip.Join(s.deps.PubSub, announce.RoundsTopic, s.log, s.validate)
			if jerr != nil {
				err = jerr
				return
			}
			s.topic = topic
			s.bg.Go(func(ctx context.Context) { s.receive(ctx, topic) })
		}
		if s.cfg.IsCoordinator {
			if s.deps.Kex != nil {
				s.server = s.serveSubmissions()
			}
			s.bg.Go(s.resume)
			s.bg.Go(s.reannounce)
			s.bg.Go(s.watchFailover)
		}
	})
	return err
}

// Close stops the updates server, the background work (waiting for running aggregations: an
// interrupted one resumes on restart) and the deadlines, and leaves the rounds topic. It may be
// called more than once, and on a service that was never started.
func (s *Service) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.server != nil {
			err = s.server.Close()
		}
		s.bg.Stop()
		s.mu.Lock()
		live := make([]*liveRound, 0, len(s.live))
		for _, lr := range s.live {
			live = append(live, lr)
		}
		s.mu.Unlock()
		for _, lr := range live { // lr.mu after s.mu, never inside it: end takes them the other way
			lr.mu.Lock()
			if lr.timer != nil {
				lr.timer.Stop()
			}
			lr.mu.Unlock()
		}
		if s.topic != nil {
			if cerr := s.topic.Close(); err == nil {
				err = cerr
			}
		}
	})
	return err
}

// receive keeps the newest snapshot of every round announced by its coordinator.
func (s *Service) receive(ctx context.Context, topic *gossip.Topic) {
	for {
		msg, err := topic.Sub.Next(ctx)
		if err != nil {
			return
		}
		if msg.GetFrom() == s.cfg.Self {
			continue // this node's own rounds are kept authoritatively
		}
		r, ok := msg.ValidatorData.(*announce.Round)
		if !ok {
			continue
		}
		// The validator checked that the author is the round's Coordinator and that the base
		// model's lineage root authorises it.
		s.heardRound(r)
		s.superseded(r)
		if err := s.remember(r); err != nil {
			s.log.Warn("store round", "round", r.ID, "err", err)
		}
	}
}

var errRoundModelUnknown = errors.New("the round's model is not in this node's catalog")

// Limits on round announcements: per coordinator, roundBurst at once and then one every
// roundEvery (an honest coordinator announces a round when it opens, changes or ends, and
// repeats its open rounds every reannounceEvery).
var (
	roundBurst = 64
	roundEvery = 200 * time.Millisecond
)

// limiterPeers is how many coordinators the round limiter tracks.
const limiterPeers = 4096

// errRoundRate refuses a coordinator that announces rounds faster than allowed.
var errRoundRate = errors.New("the coordinator announces rounds faster than allowed")

// validate checks a rounds-topic message before it is delivered or relayed: rate-limited per
// author before it is parsed, signed by the round's coordinator, and on a model this node knows
// whose lineage authorises that coordinator. A round on an unknown model is ignored, neither stored nor relayed (it may be valid for a node
// that knows the model; this one asks the coordinator when it needs the round, see findRound):
// otherwise any peer could fill every node's store with rounds for made-up models. A round by a
// coordinator the lineage does not name is ignored too (any peer could otherwise have every node
// relay rounds on real models it may not run).
func (s *Service) validate(from peer.ID, b []byte) (any, error) {
	if from != s.cfg.Self && !s.roundLimit.Allow(from) {
		return nil, errRoundRate
	}
	r, err := announce.DecodeRound(b, from)
	if err != nil {
		return nil, err
	}
	if from == s.cfg.Self {
		return r, nil
	}
	// A round on an unknown model, or run by a coordinator its model's lineage does not name, is
	// of no use to any node that knows the model: it is neither kept nor relayed.
	if err := s.authorised(r); err != nil {
		return nil, fmt.Errorf("%w: round %s: %w", gossip.ErrIgnore, r.ID, err)
	}
	return r, nil
}

// authorised checks that r's coordinator may run rounds on its base model: the model's lineage
// root (derived) must be published by it or name it among its coordinators. The error is an
// *apierr.Error with code apierr.Role, or wraps errRoundModelUnknown.
func (s *Service) authorised(r *announce.Round) error {
	id := content.ModelID(r.Model)
	rec, err := s.deps.Catalog.Get(id)
	if err != nil {
		return fmt.Errorf("%w: %x", errRoundModelUnknown, id[:8])
	}
	coord, err := peer.Decode(r.Coordinator)
	if err != nil || !rec.Authorises(coord) {
		return apierr.Errorf(apierr.Role, "round %s is run by %s, which the lineage of model %x does not name as a coordinator: refusing it", r.ID, r.Coordinator, id[:8])
	}
	return nil
}

// remember stores r if it is newer than what this node holds.
func (s *Service) remember(r *announce.Round) error {
	return s.deps.Store.Update(func(tx *store.Tx) error {
		var old store.RoundRecord
		if err := tx.Get(store.RoundKey(r.ID), &old); err == nil && (old.Seq >= r.Seq || old.Coordinator != r.Coordinator || old.SupersededBy != "") {
			return nil
		}
		return tx.Put(store.RoundKey(r.ID), roundRecord(r))
	})
}

// Get returns a round as this node knows it (an unknown one's error wraps store.ErrNotFound).
func (s *Service) Get(id string) (*announce.Round, error) {
	var rec store.RoundRecord
	if err := s.deps.Store.Get(store.RoundKey(id), &rec); err != nil {
		return nil, err
	}
	r := roundOf(&rec)
	return &r, nil
}

// List returns the rounds this node knows, oldest first; only those on model when it is set.
func (s *Service) List(model *content.ModelID) ([]announce.Round, error) {
	var rounds []announce.Round
	err := s.deps.Store.Scan(store.RoundPrefix(), func(_ store.Key, decode func(any) error) error {
		var rec store.RoundRecord
		if decode(&rec) == nil && (model == nil || string(model[:]) == string(rec.Model)) {
			rounds = append(rounds, roundOf(&rec))
		}
		return nil
	})
	sort.SliceStable(rounds, func(i, j int) bool { return rounds[i].OpenedAt < rounds[j].OpenedAt })
	return rounds, err
}

// OpenBases returns the base models of the rounds this node coordinates that have not ended
// (open or aggregating): their ciphertext must stay (node/storage).
func (s *Service) OpenBases() []content.ModelID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []content.ModelID
	for _, lr := range s.live {
		// The base never changes once a round is live, so it is read without lr.mu (which an
		// aggregation holds for long).
		if len(lr.r.Model) == 32 {
			out = append(out, content.ModelID(lr.r.Model))
		}
	}
	return out
}

func (s *Service) announce(r announce.Round) {
	if s.topic == nil {
		return // not started, or no pubsub: nobody to tell
	}
	b, err := r.Encode()
	if err != nil {
		s.log.Warn("encode round", "round", r.ID, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(s.bg.Context(), 5*time.Second)
	defer cancel()
	if err := s.topic.Publish(ctx, b); err != nil {
		s.log.Debug("announce round", "round", r.ID, "err", err)
	}
}

// reannounce repeats the open rounds so that nodes that joined later learn them.
func (s *Service) reannounce(ctx context.Context) {
	t := time.NewTicker(reannounceEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.reannounceOnce()
	}
}

// beforeRoundLock, when set by a test, runs just before reannounceOnce takes a round's lock.
var beforeRoundLock func()

// reannounceOnce announces every live round's current state. It takes each round's lock only
// after releasing s.mu: an aggregation holds its round's lock and then takes s.mu to end the
// round, so holding s.mu while waiting for a round's lock would deadlock the two.
func (s *Service) reannounceOnce() {
	s.mu.Lock()
	live := make([]*liveRound, 0, len(s.live))
	for _, lr := range s.live {
		live = append(live, lr)
	}
	s.mu.Unlock()
	for _, lr := range live {
		if beforeRoundLock != nil {
			beforeRoundLock()
		}
		lr.mu.Lock()
		r := lr.r
		lr.mu.Unlock()
		s.announce(r)
	}
	s.reannounceReopeners()
}

// save persists a live round's state (and any extra writes) in one transaction, then announces
// it. The caller holds lr.mu.
func (s *Service) save(lr *liveRound, extra func(tx *store.Tx) error) error {
	lr.r.Seq++
	err := s.deps.Store.Update(func(tx *store.Tx) error {
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return tx.Put(store.RoundKey(lr.r.ID), roundRecord(&lr.r))
	})
	if err != nil {
		return err
	}
	s.announce(lr.r)
	return nil
}

// loadBase decrypts and parses the base model of a round on its coordinator.
func (s *Service) loadBase(id content.ModelID) (*fl.File, error) {
	plain, err := s.deps.Models.Plaintext(id) // it stays in memory while the round is open
	if err != nil {
		return nil, err
	}
	f, err := fl.Parse(plain)
	if err != nil {
		return nil, fmt.Errorf("the model is not a safetensors file, so it cannot be trained: %w", err)
	}
	return f, nil
}

// parseDeadline reads an RFC 3339 time or a duration from now.
func parseDeadline(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	return time.Parse(time.RFC3339, s)
}

// OpenParams describe a round to open.
type OpenParams struct {
	ModelID    string  // the base model: 64 lowercase hex digits
	MinUpdates int     // accepted updates needed to aggregate, 1 to 10000
	Deadline   string  // RFC 3339 time or a duration from now ("10m"), within 30 days
	Rule       string  // aggregation rule ("": fedavg)
	ClipNorm   float64 // bound on an update's norm (0: none)
	ClipMode   string  // reject ("") or scale an update beyond ClipNorm
	MaxSamples uint64  // most samples one trainer may claim (0: announce.DefaultMaxSamples)
	// Secure runs the round with secure aggregation (secure.go); the rest override
	// secagg.DefaultParams(MinUpdates) when non-zero.
	Secure     bool
	Neighbours int     // degree of the masking graph
	Threshold  int     // shares that reconstruct a trainer's secrets
	Clip       float64 // each delta coordinate is clamped to ±Clip
	Bits       int     // fixed-point precision
	// Reopens is the round this one re-opens (failover.go): set only by the failover.
	Reopens string
	// The strategy (strategy.go): the server step on the rule's aggregate ("": fedavg) and its
	// parameters (0: the strategy's default), and FedProx's μ for the built-in trainer.
	Strategy string
	ServerLR float64 // η
	Momentum float64 // fedavgm's β, fedadam's β1
	Beta2    float64 // fedadam
	Tau      float64 // fedadam
	ProxMu   float64 // 0: no proximal term
	// The trainers' hyperparameters for the round (0: each trainer's own train settings).
	Epochs       int
	BatchSize    int
	LearningRate float64
	// Campaign tags the round as one of a campaign's (node/campaign), nil for a lone round.
	Campaign *announce.CampaignTag
	// Config is the round's free-form configuration for the trainers' exec hooks
	// (announce.CheckConfig bounds it; nil: none).
	Config map[string]any
}

// requireRole refuses a call on a node without role r.
func requireRole(has bool, r string) error {
	if !has {
		return apierr.Errorf(apierr.Role, "this node is not a %s: add %q to node.roles to use this method", r, r)
	}
	return nil
}

// parseModelID parses a lowercase-hex ModelID parameter.
func parseModelID(s string) (content.ModelID, error) {
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != 32 {
		return content.ModelID{}, apierr.Errorf(apierr.InvalidParams, "model_id %q must be 64 hex digits", s)
	}
	return content.ModelID(raw), nil
}

// lookup returns a catalog entry, resolving a model this node has not seen from the network, or
// a not_found error.
func (s *Service) lookup(ctx context.Context, hexID string) (*catalog.Record, error) {
	id, err := parseModelID(hexID)
	if err != nil {
		return nil, err
	}
	rec, err := s.deps.Catalog.Resolve(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.Errorf(apierr.NotFound, "model %s is not in this node's catalog", hexID)
	}
	return rec, err
}

// Open starts a round on this coordinator and returns its ID. Bad parameters, a node that is not
// a coordinator, a model not in the catalog or whose lineage does not name this node, or whose
// key this node does not hold are refused with an *apierr.Error.
func (s *Service) Open(ctx context.Context, p OpenParams) (string, error) {
	switch {
	case p.MaxSamples == 0:
		p.MaxSamples = announce.DefaultMaxSamples
	case p.MaxSamples > announce.MaxSampleCeiling:
		return "", apierr.Errorf(apierr.InvalidParams, "max_samples %d is more than %d: give the most samples one trainer may claim", p.MaxSamples, uint64(announce.MaxSampleCeiling))
	}
	if err := requireRole(s.cfg.IsCoordinator, "coordinator"); err != nil {
		return "", err
	}
	rec, err := s.lookup(ctx, p.ModelID)
	if err != nil {
		return "", err
	}
	if !rec.Authorises(s.cfg.Self) {
		return "", apierr.Errorf(apierr.Role, "the lineage of model %s does not name this node as a coordinator, so trainers would refuse its rounds: its publisher names coordinators when it publishes (model publish --coordinator)", p.ModelID)
	}
	if p.Rule == "" {
		p.Rule = fl.RuleFedAvg
	}
	if fl.ValidRule(p.Rule) != nil {
		return "", apierr.Errorf(apierr.InvalidParams, "rule %q is not one of %s", p.Rule, strings.Join(fl.Rules(), ", "))
	}
	if p.MinUpdates < 1 || p.MinUpdates > 10000 {
		return "", apierr.Errorf(apierr.InvalidParams, "min_updates must be between 1 and 10000")
	}
	if p.Secure {
		if err := announce.SecureRule(p.Rule, p.ClipNorm, p.ClipMode); err != nil {
			return "", apierr.Errorf(apierr.InvalidParams, "%v", err)
		}
	} else if p.Neighbours != 0 || p.Threshold != 0 || p.Clip != 0 || p.Bits != 0 {
		return "", apierr.Errorf(apierr.InvalidParams, "neighbours, threshold, clip and bits are secure aggregation parameters: add secure to use them")
	}
	if p.ClipMode != "" && p.ClipMode != announce.ClipReject && p.ClipMode != announce.ClipScale {
		return "", apierr.Errorf(apierr.InvalidParams, "clip_mode %q is not reject or scale", p.ClipMode)
	}
	if p.ClipNorm < 0 {
		return "", apierr.Errorf(apierr.InvalidParams, "clip_norm must be ≥ 0 (0: no bound)")
	}
	now := time.Now().UTC()
	deadline, err := parseDeadline(p.Deadline, now)
	if err != nil || !deadline.After(now) || deadline.After(now.Add(30*24*time.Hour)) {
		return "", apierr.Errorf(apierr.InvalidParams, "deadline %q must be a future RFC 3339 time or a duration such as \"10m\", within 30 days", p.Deadline)
	}
	if !s.deps.Models.Complete(rec) {
		if err := s.deps.Models.WaitFetched(ctx, rec); err != nil {
			return "", err
		}
	}
	var rid [16]byte
	rand.Read(rid[:])
	lr := &liveRound{ended: make(chan struct{}), r: announce.Round{
		ID: hex.EncodeToString(rid[:]), Model: rec.ID[:], Coordinator: s.cfg.Self.String(),
		MinUpdates: p.MinUpdates, Deadline: deadline.UnixMilli(), Rule: p.Rule, ClipNorm: p.ClipNorm,
		ClipMode: p.ClipMode, State: announce.RoundOpen, OpenedAt: now.UnixMilli(), MaxSamples: p.MaxSamples,
		Reopens: p.Reopens, Campaign: p.Campaign,
	}}
	if err := openStrategy(&lr.r, p); err != nil {
		return "", err
	}
	if p.Secure {
		if err := s.openSecure(lr, p); err != nil {
			return "", err
		}
	}
	if err := lr.r.Check(); err != nil {
		return "", apierr.Errorf(apierr.InvalidParams, "%v", err)
	}
	defer s.opened(lr.r.ID)
	if err := s.holdBaseKey(ctx, rec, lr); err != nil {
		return "", err
	}
	base, err := s.loadBase(rec.ID)
	switch {
	case errors.Is(err, fetch.ErrNotUnlocked):
		return "", apierr.Errorf(apierr.NotUnlocked, "this coordinator holds no key for model %s, so it cannot verify updates: the publisher must escrow it here", p.ModelID)
	case err != nil:
		s.deps.Keyring.Release(rec.ID)
		return "", apierr.Errorf(apierr.InvalidParams, "model %s: %v", p.ModelID, err)
	}
	lr.base = base
	if p.Secure {
		if err := s.startSecure(lr); err != nil {
			s.deps.Keyring.Release(rec.ID)
			return "", err
		}
	}
	if lr.r.Secure {
		// no sums: the coordinator only ever holds the masked running sum (secagg.Server)
	} else if lr.sums, err = newSums(&lr.r, base); err != nil {
		return "", apierr.Errorf(apierr.InvalidParams, "%v", err)
	}
	lr.mu.Lock()
	err = s.save(lr, nil)
	opened := lr.r // as it opened: its commitment (once live, the round changes under lr.mu)
	lr.mu.Unlock()
	if err != nil {
		return "", err
	}
	s.track(lr)
	s.anchorRound(opened)
	s.log.Info("round opened", "round", opened.ID, "model", p.ModelID, "min_updates", p.MinUpdates, "deadline", deadline, "rule", p.Rule, "clip_norm", p.ClipNorm, "secure", p.Secure)
	return opened.ID, nil
}

// track makes a round live and arms its deadline.
func (s *Service) track(lr *liveRound) {
	s.mu.Lock()
	s.live[lr.r.ID] = lr
	s.mu.Unlock()
	// Under lr.mu: a submission may already end the round (end reads the timer).
	lr.mu.Lock()
	lr.timer = time.AfterFunc(time.Until(lr.r.DeadlineTime()), func() { s.bg.Go(func(context.Context) { s.deadline(lr) }) })
	lr.mu.Unlock()
}

func (s *Service) liveRound(id string) *liveRound {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[id]
}

// resume picks up this coordinator's unfinished rounds after a restart: open rounds are re-armed
// (or ended if their deadline passed), interrupted aggregations run again.
func (s *Service) resume(ctx context.Context) {
	var mine []announce.Round
	reopened := map[string]string{} // round → the round of another coordinator that re-opens it
	s.deps.Store.Scan(store.RoundPrefix(), func(_ store.Key, decode func(any) error) error {
		var rec store.RoundRecord
		if decode(&rec) != nil {
			return nil
		}
		if rec.Coordinator == s.cfg.Self.String() && (rec.State == announce.RoundOpen || rec.State == announce.RoundAggregating) {
			mine = append(mine, roundOf(&rec))
		}
		if rec.Reopens != "" && rec.Coordinator != s.cfg.Self.String() {
			reopened[rec.Reopens] = rec.ID
		}
		return nil
	})
	for _, r := range mine {
		if s.liveRound(r.ID) != nil {
			continue // opened since this node started: not a round to resume
		}
		lr := &liveRound{r: r, ended: make(chan struct{}), resumed: true}
		if by, ok := reopened[r.ID]; ok {
			// This node went silent and another coordinator re-opened the round: it runs there.
			lr.mu.Lock()
			s.fail(lr, fmt.Sprintf("this coordinator went silent and round %s re-opened it on another coordinator", by))
			lr.mu.Unlock()
			continue
		}
		if r.Secure {
			lr.mu.Lock()
			s.failSecure(lr, "the coordinator restarted during this secure round: its secure aggregation state is kept only in memory, so the round cannot go on; open a new round")
			lr.mu.Unlock()
			continue
		}
		base, err := s.loadBase(content.ModelID(r.Model))
		if err == nil {
			lr.base = base
			if lr.sums, err = newSums(&lr.r, base); err == nil {
				err = s.refold(lr)
			}
		}
		if err != nil {
			lr.mu.Lock()
			s.fail(lr, fmt.Sprintf("the base model cannot be loaded after a restart: %v", err))
			lr.mu.Unlock()
			continue
		}
		s.track(lr)
		s.log.Info("round resumed", "round", r.ID, "state", r.State, "updates", r.Updates)
		if r.State == announce.RoundAggregating {
			s.bg.Go(func(context.Context) { s.aggregate(lr) })
		}
	}
}

// newSums starts the running aggregate of a round whose rule folds updates as they arrive (an
// fl.Folder: fedavg); it is nil for the rules that need every update at once, which aggregation
// reads back from disk (newAggregator).
func newSums(r *announce.Round, base *fl.File) (fl.Folder, error) {
	a, err := newAggregator(r, base)
	if err != nil {
		return nil, err
	}
	f, _ := a.(fl.Folder)
	return f, nil
}

// refold folds a resumed round's accepted updates back into its sums, from their files.
func (s *Service) refold(lr *liveRound) error {
	if lr.sums == nil {
		return nil
	}
	return s.deps.Store.Scan(store.UpdatePrefix(lr.r.ID), func(_ store.Key, decode func(any) error) error {
		var u updateRecord
		if err := decode(&u); err != nil || !u.Accepted {
			return err
		}
		return s.foldUpdate(lr.sums, lr.r.ID, u)
	})
}

// fail ends a round as failed. The caller holds lr.mu.
func (s *Service) fail(lr *liveRound, why string) {
	lr.r.State, lr.r.Error = announce.RoundFailed, why
	if err := s.save(lr, nil); err != nil {
		s.log.Error("save failed round", "round", lr.r.ID, "err", err)
	}
	s.end(lr)
	s.log.Warn("round failed", "round", lr.r.ID, "why", why)
}

// end forgets a finished round and wipes its base key if it was held in memory for it (a threshold
// version's, unless another live round uses it). The caller holds lr.mu.
func (s *Service) end(lr *liveRound) {
	if lr.timer != nil {
		lr.timer.Stop()
	}
	s.mu.Lock()
	delete(s.live, lr.r.ID)
	inUse := false
	for _, other := range s.live {
		inUse = inUse || string(other.r.Model) == string(lr.r.Model)
	}
	s.mu.Unlock()
	if !inUse && len(lr.r.Model) == 32 {
		s.deps.Keyring.Release(content.ModelID(lr.r.Model))
	}
	select {
	case <-lr.ended:
	default:
		close(lr.ended)
	}
}

// deadline ends an open round at its deadline: it aggregates if the minimum is met, or fails.
func (s *Service) deadline(lr *liveRound) {
	if lr.sec != nil {
		s.secureDeadline(lr)
		return
	}
	lr.mu.Lock()
	if lr.r.State != announce.RoundOpen {
		lr.mu.Unlock()
		return
	}
	if lr.r.Updates < lr.r.MinUpdates {
		s.fail(lr, fmt.Sprintf("the deadline passed with %d of the %d accepted updates needed", lr.r.Updates, lr.r.MinUpdates))
		lr.mu.Unlock()
		return
	}
	lr.mu.Unlock()
	s.aggregate(lr)
}

// CloseRound aggregates a round at once if its minimum is met and returns the new model (hex).
// A round that is not known, is coordinated elsewhere, lacks updates or failed is refused with
// an *apierr.Error (NotFound, Role, Conflict).
func (s *Service) CloseRound(ctx context.Context, id string) (string, error) {
	r, err := s.Get(id)
	if err != nil {
		return "", apierr.Errorf(apierr.NotFound, "round %q is not known", id)
	}
	if r.Coordinator != s.cfg.Self.String() {
		return "", apierr.Errorf(apierr.Role, "round %s is coordinated by %s: close it there", id, r.Coordinator)
	}
	if lr := s.liveRound(id); lr != nil && lr.sec != nil {
		return "", apierr.Errorf(apierr.Conflict, "round %s is secure: it aggregates by itself once its trainers have gone through the secure aggregation phases, or fails at its deadline", id)
	} else if lr != nil {
		lr.mu.Lock()
		updates, min := lr.r.Updates, lr.r.MinUpdates
		lr.mu.Unlock()
		if updates < min {
			return "", apierr.Errorf(apierr.Conflict, "round %s has %d of the %d accepted updates it needs: it aggregates once they arrive, or fails at its deadline", id, updates, min)
		}
		s.bg.Go(func(context.Context) { s.aggregate(lr) })
		select {
		case <-lr.ended:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if r, err = s.Get(id); err != nil {
			return "", err
		}
	} else if r, err = s.Get(id); err != nil { // it may have ended since it was read above
		return "", err
	}
	switch r.State {
	case announce.RoundDone:
		return hex.EncodeToString(r.NewModel), nil
	case announce.RoundFailed:
		return "", apierr.Errorf(apierr.Conflict, "round %s failed: %s", id, r.Error)
	}
	return "", apierr.Errorf(apierr.Conflict, "round %s is %s", id, r.State)
}

// updatePath is where a coordinator keeps a trainer's accepted update to a round.
func (s *Service) updatePath(round, trainer string) string {
	return filepath.Join(s.cfg.RoundsDir, round, trainer+".safetensors")
}
