// Package autotrain makes a trainer take part in rounds on its own (train.auto): it joins every
// announced round it can join — open, its deadline ahead, its coordinator authorised by the base
// model's lineage (node/rounds Standings) — on a lineage this node has paid for (it holds the key
// of the lineage's first version), trains on its data, submits, and logs each step. It joins at
// most train.auto_max_per_hour rounds an hour and none during train.quiet_hours.
package autotrain

import (
	"context"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/protocols/announce"
)

// Rounds is what the trainer uses of the rounds service.
type Rounds interface {
	// List returns the rounds this node knows.
	List(model *content.ModelID) ([]announce.Round, error)
	// Standings says which of rs this node may join now.
	Standings(rs []announce.Round, now time.Time) ([]rounds.Standing, error)
	// Train runs the training hook for a round; Submit sends the update.
	Train(ctx context.Context, p rounds.TrainParams) (rounds.TrainResult, error)
	Submit(ctx context.Context, roundID, updateID string) (rounds.SubmitResult, error)
}

// Catalog finds a round's base model.
type Catalog interface {
	Get(id content.ModelID) (*catalog.Record, error)
}

// Keyring tells whether this node holds a model's key.
type Keyring interface {
	Has(id content.ModelID) bool
}

// Config configures the trainer.
type Config struct {
	// MaxPerHour caps the rounds joined in any hour (0: no cap).
	MaxPerHour int
	// Quiet is the daily quiet window (UTC), during which no round is joined; zero: none.
	Quiet Window
	// Every is how often the known rounds are checked (0: 2s).
	Every time.Duration
	// Log is the subsystem's logger (nil: discard).
	Log *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Window is a daily time window in UTC, [From, To) as minutes after midnight (config's
// ParseQuietHours); From > To spans midnight, From == To is none.
type Window struct{ From, To int }

// Contains reports whether t (taken in UTC) falls in the window.
func (w Window) Contains(t time.Time) bool {
	if w.From == w.To {
		return false
	}
	t = t.UTC()
	m := t.Hour()*60 + t.Minute()
	if w.From < w.To {
		return m >= w.From && m < w.To
	}
	return m >= w.From || m < w.To
}

// Service joins rounds on the trainer's behalf.
type Service struct {
	cfg     Config
	rounds  Rounds
	catalog Catalog
	keys    Keyring
	log     *slog.Logger

	mu       sync.Mutex
	tried    map[string]bool // rounds joined (or tried) since start
	joinedAt []time.Time     // when, for the hourly cap

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns the service; it joins nothing until Start.
func New(cfg Config, r Rounds, c Catalog, k Keyring) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Every <= 0 {
		cfg.Every = 2 * time.Second
	}
	return &Service{cfg: cfg, rounds: r, catalog: c, keys: k, log: cfg.Log, tried: map[string]bool{}}
}

// Start checks the known rounds every cfg.Every and joins those it may.
func (s *Service) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() {
		t := time.NewTicker(s.cfg.Every)
		defer t.Stop()
		for {
			s.Once(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return nil
}

// Close stops joining (a round being trained for is cancelled). It is idempotent.
func (s *Service) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	return nil
}

// Once joins, one after another, the rounds this node may join now, and returns their IDs.
func (s *Service) Once(ctx context.Context) []string {
	now := s.cfg.Now()
	if s.cfg.Quiet.Contains(now) {
		return nil
	}
	list, err := s.rounds.List(nil)
	if err != nil {
		s.log.Warn("list rounds", "err", err)
		return nil
	}
	st, err := s.rounds.Standings(list, now)
	if err != nil {
		s.log.Warn("round standings", "err", err)
		return nil
	}
	var joined []string
	for i, r := range list {
		if !st[i].Joinable || !s.pays(r) {
			continue
		}
		if !s.take(r.ID, now) {
			continue
		}
		if s.join(ctx, r) {
			joined = append(joined, r.ID)
		}
	}
	return joined
}

// pays reports whether this node paid for the lineage of r's base model: it holds the key of the
// lineage's first version (paid once, or published).
func (s *Service) pays(r announce.Round) bool {
	rec, err := s.catalog.Get(content.ModelID(r.Model))
	if err != nil {
		return false
	}
	return s.keys.Has(rec.Lineage())
}

// take reserves r's turn: not tried yet, and within the hourly cap.
func (s *Service) take(id string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tried[id] {
		return false
	}
	keep := s.joinedAt[:0]
	for _, t := range s.joinedAt {
		if now.Sub(t) < time.Hour {
			keep = append(keep, t)
		}
	}
	s.joinedAt = keep
	if s.cfg.MaxPerHour > 0 && len(s.joinedAt) >= s.cfg.MaxPerHour {
		return false
	}
	s.tried[id] = true
	s.joinedAt = append(s.joinedAt, now)
	return true
}

// untake gives back the hourly slot the last take reserved (the round stays tried).
func (s *Service) untake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.joinedAt); n > 0 {
		s.joinedAt = s.joinedAt[:n-1]
	}
}

// join trains for r and submits, logging each step; it reports whether the update went in.
func (s *Service) join(ctx context.Context, r announce.Round) bool {
	log := s.log.With("round", r.ID, "model", hex.EncodeToString(r.Model), "coordinator", r.Coordinator)
	log.Info("joining round")
	tctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	res, err := s.rounds.Train(tctx, rounds.TrainParams{RoundID: r.ID})
	if rounds.IsEpochCap(err) {
		// The coordinator asks for more epochs than this trainer gives a round: not joined, not
		// retried, and not counted against the hourly cap.
		log.Warn("auto-train: not joining round: it asks for more local epochs than train.max_round_epochs allows", "epochs", r.Epochs, "err", err)
		s.untake()
		return false
	}
	if err != nil {
		log.Warn("auto-train: training failed", "err", err)
		return false
	}
	log.Info("auto-train: update trained", "update", res.UpdateID, "samples", res.Samples, "seconds", res.Seconds)
	sub, err := s.rounds.Submit(tctx, r.ID, res.UpdateID)
	if err != nil {
		log.Warn("auto-train: submission refused", "update", res.UpdateID, "err", err)
		return false
	}
	log.Info("auto-train: update submitted", "update", res.UpdateID, "secure", sub.Secure, "norm", sub.Norm)
	return true
}
