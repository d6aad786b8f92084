package catalog

import (
	"context"
	"encoding/hex"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/announce"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// validate checks a models-topic message: rate-limited per author before anything is parsed (a
// rejected message scores its sender down in gossipsub), then the manifest's signature. The
// opened record becomes the message's ValidatorData.
func (s *Service) validate(from peer.ID, b []byte) (any, error) {
	if from != s.cfg.Self && !s.announceLimit.Allow(from) {
		return nil, errAnnounceRate
	}
	var opened *Record
	_, err := announce.DecodeModelAnnounce(b, func(signed []byte) error {
		man, id, err := content.Open(signed)
		opened = &Record{ID: id, Manifest: man, Signed: signed}
		return err
	})
	return opened, err
}

// Announce publishes a model on the models topic (nothing before Start or without PubSub).
func (s *Service) Announce(ctx context.Context, r *Record) {
	s.topicMu.RLock()
	topic := s.topic
	s.topicMu.RUnlock()
	if topic == nil {
		return
	}
	data, err := announce.NewModelAnnounce(r.Signed).Encode()
	if err != nil {
		s.log.Warn("encode announcement", "err", err)
		return
	}
	if err := topic.Publish(ctx, data); err != nil {
		s.log.Warn("announce model", "model", hex.EncodeToString(r.ID[:]), "err", err)
	}
}

func (s *Service) receiveAnnouncements(ctx context.Context, sub *pubsub.Subscription) {
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		opened, ok := msg.ValidatorData.(*Record)
		if !ok {
			continue
		}
		s.heard(opened, msg.GetFrom())
	}
}

// maxAnnouncers bounds the announcers remembered per model: peer IDs cost nothing, so without it
// a flood of fresh authors re-announcing one model would grow the set without end. The first
// ones are kept (usually the publisher and the early seeders); the DHT finds the rest.
const maxAnnouncers = 64

// heard admits an announced model and remembers its announcer as a provider.
func (s *Service) heard(opened *Record, from peer.ID) {
	rec, _, err := s.addOpened(opened, "gossip")
	if err != nil {
		return // refused and logged (a child whose parent is unknown is seen again by catalog sync)
	}
	if from != s.cfg.Self {
		s.mu.Lock()
		set := s.announced[rec.ID]
		if set == nil {
			set = map[peer.ID]bool{}
			s.announced[rec.ID] = set
		}
		if len(set) < maxAnnouncers {
			set[from] = true
		}
		s.mu.Unlock()
	}
}
