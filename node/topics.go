package node

import (
	"context"
	"log/slog"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// joinTopic registers a validator that rejects every message validate refuses (given the
// message's signed author); what validate returns for an accepted message is its ValidatorData,
// so receivers use the decoded, verified value instead of checking it again (so gossipsub
// scores the sender down), joins the topic and subscribes; Close unsubscribes and leaves.
func (n *Node) joinTopic(name string, log *slog.Logger, validate func(from peer.ID, data []byte) (any, error)) (*pubsub.Topic, *pubsub.Subscription, error) {
	if err := n.pubsub.RegisterTopicValidator(name, func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		v, err := validate(m.GetFrom(), m.Data)
		if err != nil {
			log.Debug("message rejected", "topic", name, "peer", m.GetFrom(), "err", err)
			return pubsub.ValidationReject
		}
		m.ValidatorData = v
		return pubsub.ValidationAccept
	}); err != nil {
		return nil, nil, err
	}
	topic, err := n.pubsub.Join(name)
	if err != nil {
		return nil, nil, err
	}
	sub, err := topic.Subscribe()
	if err != nil {
		topic.Close()
		return nil, nil, err
	}
	n.onStop(func() error { sub.Cancel(); return topic.Close() })
	return topic, sub, nil
}
