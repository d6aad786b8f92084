// Package gossip joins gossipsub topics with a validator that decodes each message once.
package gossip

import (
	"context"
	"log/slog"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Topic is a joined topic and this node's subscription to it.
type Topic struct {
	*pubsub.Topic
	Sub *pubsub.Subscription
}

// Close unsubscribes and leaves the topic.
func (t *Topic) Close() error {
	t.Sub.Cancel()
	return t.Topic.Close()
}

// Join registers a validator that rejects every message validate refuses (given the message's
// signed author, so gossipsub scores the sender down); what validate returns for an accepted
// message becomes its ValidatorData, so receivers use the decoded, verified value instead of
// checking it again. It then joins the topic and subscribes.
func Join(ps *pubsub.PubSub, name string, log *slog.Logger, validate func(from peer.ID, data []byte) (any, error)) (*Topic, error) {
	if err := ps.RegisterTopicValidator(name, func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		v, err := validate(m.GetFrom(), m.Data)
		if err != nil {
			log.Debug("message rejected", "topic", name, "peer", m.GetFrom(), "err", err)
			return pubsub.ValidationReject
		}
		m.ValidatorData = v
		return pubsub.ValidationAccept
	}); err != nil {
		return nil, err
	}
	topic, err := ps.Join(name)
	if err != nil {
		return nil, err
	}
	sub, err := topic.Subscribe()
	if err != nil {
		topic.Close()
		return nil, err
	}
	return &Topic{Topic: topic, Sub: sub}, nil
}
