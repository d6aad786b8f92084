package node

import (
	"context"
	"time"

	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/store"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// startPresence joins the presence topic: the node announces its roles and addresses when it
// starts, whenever a new peer joins the topic (so newcomers learn of it quickly), and every
// p2p.presence_interval; valid announcements from others are kept in the store.
func (n *Node) startPresence(context.Context) error {
	log := n.log.With("subsys", "presence")
	topic, sub, err := n.joinTopic(announce.PresenceTopic, log, func(_ peer.ID, b []byte) (any, error) {
		return announce.DecodePresence(b)
	})
	if err != nil {
		return err
	}
	events, err := topic.EventHandler()
	if err != nil {
		return err
	}
	n.onStop(func() error { events.Cancel(); return nil })

	// receive
	n.spawn(func(ctx context.Context) {
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			from := m.GetFrom()
			if from == n.host.ID() {
				continue
			}
			p, ok := m.ValidatorData.(*announce.Presence)
			if !ok {
				continue
			}
			rec := store.Presence{Roles: p.Roles, Version: p.Version, Addrs: p.Addrs, SentAt: p.SentTime(), Received: time.Now().UTC()}
			if err := n.store.Put(store.PresenceKey(from.String()), &rec); err != nil {
				log.Warn("store presence", "peer", from, "err", err)
			}
		}
	})

	// announce: at start, on a new topic peer (debounced), and periodically
	joined := make(chan struct{}, 1)
	n.spawn(func(ctx context.Context) {
		for {
			ev, err := events.NextPeerEvent(ctx)
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
	})
	n.spawn(func(ctx context.Context) {
		tick := time.NewTicker(n.cfg.P2P.PresenceInterval.Duration)
		defer tick.Stop()
		var again <-chan time.Time
		for {
			n.announcePresence(ctx, topic, log)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			case <-again:
				again = nil
			case <-joined:
				// Let the mesh settle so one announcement reaches every newcomer, and announce once
				// more a little later: on a loaded machine the newcomer's side of the mesh may not
				// be ready for the first, and a lost announcement would hide this node from it for
				// a whole presence_interval.
				select {
				case <-ctx.Done():
					return
				case <-time.After(500 * time.Millisecond):
				}
				again = time.After(presenceRepeat)
			}
		}
	})
	return nil
}

// presenceRepeat is how long after a newcomer joined the node announces itself a second time.
const presenceRepeat = 5 * time.Second

func (n *Node) announcePresence(ctx context.Context, topic *pubsub.Topic, log interface{ Debug(string, ...any) }) {
	p := announce.Presence{Roles: n.cfg.Node.Roles, Version: VersionString(), Addrs: n.listenAddrs(), SentAt: time.Now().UnixMilli()}
	data, err := p.Encode()
	if err != nil {
		log.Debug("encode presence", "err", err)
		return
	}
	if err := topic.Publish(ctx, data); err != nil {
		log.Debug("publish presence", "err", err)
	}
}
