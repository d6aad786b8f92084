package wire

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrRateLimited is why a stream from a peer over its request rate (Limits.Allow) is reset.
var ErrRateLimited = errors.New("peer is over its request rate")

// Limits are what a stream handler reserves, bounds and admits.
type Limits struct {
	Service string // resource-manager service the stream is attached to
	Memory  int    // bytes reserved for the stream's buffers before anything is read; 0: none
	// Priority is the reservation's priority; 0: network.ReservationPriorityAlways.
	Priority uint8
	Timeout  time.Duration // deadline for the exchange (serve may move it); 0: none
	// Allow, if set, is the per-peer rate limit: it takes one request from the remote peer's
	// allowance and reports whether there was one. A stream it refuses is reset before any of
	// its payload is read.
	Allow func(peer.ID) bool
	// Admit, if set, takes a slot for the remote peer (a cap on what one peer or all peers hold
	// open at once) after Allow and before serve; a stream it refuses is reset unread. release
	// runs when the handler ends, however it ends.
	Admit func(peer.ID) (release func(), err error)
}

// Handler wraps serve in the steps every CaliFusion stream handler takes, in this order: attach
// to the resource manager and reserve memory, set the deadline, check the rate limit (Allow),
// take a slot (Admit), then serve, which reads through a size-capped reader, validates,
// dispatches and replies; then Close on success or Reset on any error (or panic, which is
// logged). serve may end the stream itself first (a session that must wipe its state once the
// stream is done does): Close and Reset are idempotent.
func Handler(lim Limits, log *slog.Logger, serve func(network.Stream) error) network.StreamHandler {
	if lim.Priority == 0 {
		lim.Priority = network.ReservationPriorityAlways
	}
	return func(st network.Stream) {
		remote := st.Conn().RemotePeer()
		defer func() {
			if p := recover(); p != nil {
				log.Error("stream handler panicked", "service", lim.Service, "peer", remote, "panic", p)
				st.Reset()
			}
		}()
		if err := run(st, remote, lim, serve); err != nil {
			log.Debug("stream failed", "service", lim.Service, "peer", remote, "err", err)
			st.Reset()
			return
		}
		st.Close()
	}
}

func run(st network.Stream, remote peer.ID, lim Limits, serve func(network.Stream) error) error {
	if err := st.Scope().SetService(lim.Service); err != nil {
		return fmt.Errorf("attach to resource manager: %w", err)
	}
	if lim.Memory > 0 {
		if err := st.Scope().ReserveMemory(lim.Memory, lim.Priority); err != nil {
			return fmt.Errorf("reserve memory: %w", err)
		}
		defer st.Scope().ReleaseMemory(lim.Memory)
	}
	if lim.Timeout > 0 {
		st.SetDeadline(time.Now().Add(lim.Timeout))
	}
	if lim.Allow != nil && !lim.Allow(remote) {
		return ErrRateLimited
	}
	if lim.Admit != nil {
		release, err := lim.Admit(remote)
		if err != nil {
			return err
		}
		defer release()
	}
	return serve(st)
}
