// Package gossip joins gossipsub topics with a validator that decodes each message once.
package gossip

import (
	"context"
	"errors"
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

// ErrIgnore, returned (wrapped or not) by a validator, drops a message without scoring its sender
// down: it is neither delivered nor relayed, but it may be valid for a node that knows more (a
// round for a model this node has not heard of yet).
var ErrIgnore = errors.New("message ignored")

// Join registers a validator that rejects every message validate refuses (given the message's
// signed author, so gossipsub scores the sender down), or ignores it when the refusal is
// ErrIgnore; what validate returns for an accepted message becomes its ValidatorData, so
// receivers use the decoded, verified value instead of checking it again. It then joins the
// topic and subscribes.
func Join(ps *pubsub.PubSub, name string, log *slog.Logger, validate func(from peer.ID, data []byte) (any, error)) (*Topic, error) {
	if err := ps.RegisterTopicValidator(name, func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		v, err := validate(m.GetFrom(), m.Data)
		if errors.Is(err, ErrIgnore) {
			log.Debug("message ignored", "topic", name, "peer", m.GetFrom(), "err", err)
			return pubsub.ValidationIgnore
		}
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
