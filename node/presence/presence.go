// Package presence tells the network what this node is: it announces the node's roles, version
// and addresses on the presence topic and keeps what the other nodes announced (the directory).
// A role claimed in presence is only a claim: nothing is granted on it (a lineage names its
// coordinators; see node/catalog).
package presence

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/internal/gossip"
	"github.com/califusion/califusion/node/internal/tasks"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/store"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Config describes what this node announces.
type Config struct {
	Self     peer.ID
	Roles    []string
	Version  string
	Interval time.Duration   // p2p.presence_interval
	Addrs    func() []string // the node's listen addresses now
	Log      *slog.Logger
}

// Service announces this node and keeps the directory of the others.
type Service struct {
	cfg   Config
	store *store.Store
	ps    *pubsub.PubSub

	topic  *gossip.Topic
	events *pubsub.TopicEventHandler
	bg     *tasks.Group
}

// New returns the presence service over the node's store and gossipsub; Start joins the topic.
func New(cfg Config, st *store.Store, ps *pubsub.PubSub) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, store: st, ps: ps}
}

// repeat is how long after a newcomer joined the node announces itself a second time.
const repeat = 5 * time.Second

// Start joins the presence topic: the node announces itself when it starts, whenever a new peer
// joins the topic (so newcomers learn of it quickly), and every Interval; valid announcements
// from others are kept in the store.
func (s *Service) Start(ctx context.Context) error {
	topic, err := gossip.Join(s.ps, announce.PresenceTopic, s.cfg.Log, func(_ peer.ID, b []byte) (any, error) {
		return announce.DecodePresence(b)
	})
	if err != nil {
		return err
	}
	events, err := topic.EventHandler()
	if err != nil {
		topic.Close()
		return err
	}
	s.topic, s.events, s.bg = topic, events, tasks.New(ctx)
	s.bg.Go(s.receive)
	joined := make(chan struct{}, 1)
	s.bg.Go(func(ctx context.Context) { s.watchJoins(ctx, joined) })
	s.bg.Go(func(ctx context.Context) { s.announceLoop(ctx, joined) })
	return nil
}

// Close stops announcing and leaves the topic.
func (s *Service) Close() error {
	if s.bg == nil {
		return nil
	}
	s.events.Cancel()
	s.bg.Stop()
	return s.topic.Close()
}

func (s *Service) receive(ctx context.Context) {
	for {
		m, err := s.topic.Sub.Next(ctx)
		if err != nil {
			return
		}
		from := m.GetFrom()
		if from == s.cfg.Self {
			continue
		}
		p, ok := m.ValidatorData.(*announce.Presence)
		if !ok {
			continue
		}
		rec := store.Presence{Roles: p.Roles, Version: p.Version, Addrs: p.Addrs, SentAt: p.SentTime(), Received: time.Now().UTC()}
		if err := s.keep(from, &rec); err != nil {
			s.cfg.Log.Warn("store presence", "peer", from, "err", err)
		}
	}
}

// Bounds of the directory: at most MaxEntries peers (a peer heard of first replaces the one heard
// from longest ago, so a flood of fresh peer IDs cannot grow the store without end), and an entry
// not heard from for MaxAge is forgotten.
var (
	MaxEntries = 4096
	MaxAge     = 24 * time.Hour
)

// keep stores what peer from announced, within the directory's bounds.
func (s *Service) keep(from peer.ID, rec *store.Presence) error {
	key := store.PresenceKey(from.String())
	return s.store.Update(func(tx *store.Tx) error {
		if has, err := tx.Has(key); err != nil || has {
			if err != nil {
				return err
			}
			return tx.Put(key, rec)
		}
		var (
			n          int
			oldest     store.Key
			oldestTime time.Time
		)
		err := tx.Scan(store.PresencePrefix(), func(k store.Key, decode func(any) error) error {
			n++
			var p store.Presence
			if decode(&p) == nil && (oldest == nil || p.Received.Before(oldestTime)) {
				oldest, oldestTime = append(store.Key(nil), k...), p.Received
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n >= MaxEntries && oldest != nil {
			if err := tx.Delete(oldest); err != nil {
				return err
			}
		}
		return tx.Put(key, rec)
	})
}

// prune forgets the peers not heard from since MaxAge before now.
func (s *Service) prune(now time.Time) error {
	var stale []store.Key
	err := s.store.Scan(store.PresencePrefix(), func(k store.Key, decode func(any) error) error {
		var p store.Presence
		if decode(&p) != nil || now.Sub(p.Received) > MaxAge {
			stale = append(stale, append(store.Key(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := s.store.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) watchJoins(ctx context.Context, joined chan<- struct{}) {
	for {
		ev, err := s.events.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			select {
			case joined <- struct{}{}:
			default:
			}
		}
	}
}

// announceLoop announces at start, on a new topic peer (debounced), and periodically.
func (s *Service) announceLoop(ctx context.Context, joined <-chan struct{}) {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	var again <-chan time.Time
	for {
		s.announce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := s.prune(time.Now()); err != nil {
				s.cfg.Log.Warn("prune the directory", "err", err)
			}
		case <-again:
			again = nil
		case <-joined:
			// Let the mesh settle so one announcement reaches every newcomer, and announce once
			// more a little later: on a loaded machine the newcomer's side of the mesh may not be
			// ready for the first, and a lost announcement would hide this node from it for a
			// whole presence_interval.
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			again = time.After(repeat)
		}
	}
}

func (s *Service) announce(ctx context.Context) {
	p := announce.Presence{Roles: s.cfg.Roles, Version: s.cfg.Version, Addrs: s.cfg.Addrs(), SentAt: time.Now().UnixMilli()}
	data, err := p.Encode()
	if err != nil {
		s.cfg.Log.Debug("encode presence", "err", err)
		return
	}
	if err := s.topic.Publish(ctx, data); err != nil {
		s.cfg.Log.Debug("publish presence", "err", err)
	}
}

// Entry is one peer of the directory: what it last announced.
type Entry struct {
	Peer string
	store.Presence
}

// Directory lists what every other node last announced.
func (s *Service) Directory() ([]Entry, error) {
	var out []Entry
	err := s.store.Scan(store.PresencePrefix(), func(k store.Key, decode func(any) error) error {
		var p store.Presence
		if err := decode(&p); err != nil {
			return err
		}
		out = append(out, Entry{Peer: string(k[len(store.PresencePrefix()):]), Presence: p})
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	return out, nil
}

// Coordinators lists the peers that claim the coordinator role in their presence, this node
// first if it is one. A claim grants nothing: callers ask only those a lineage names.
func (s *Service) Coordinators() []peer.ID {
	var out []peer.ID
	if slices.Contains(s.cfg.Roles, config.RoleCoordinator) {
		out = append(out, s.cfg.Self)
	}
	s.store.Scan(store.PresencePrefix(), func(k store.Key, decode func(any) error) error {
		var p store.Presence
		if decode(&p) != nil {
			return nil
		}
		if slices.Contains(p.Roles, config.RoleCoordinator) {
			if id, err := peer.Decode(string(k[len(store.PresencePrefix()):])); err == nil {
				out = append(out, id)
			}
		}
		return nil
	})
	return out
}
