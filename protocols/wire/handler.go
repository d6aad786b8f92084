package wire

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// Limits are what a stream handler reserves and allows.
type Limits struct {
	Service string        // resource-manager service the stream is attached to
	Memory  int           // bytes reserved for the stream's buffers
	Timeout time.Duration // deadline for the whole exchange
}

// Handler wraps serve in the steps every CaliFusion stream handler takes, in this order: attach
// to the resource manager and reserve memory, set the deadline, serve, then Close on success or
// Reset on any error (or panic, which is logged).
func Handler(lim Limits, log *slog.Logger, serve func(network.Stream) error) network.StreamHandler {
	return func(st network.Stream) {
		defer func() {
			if p := recover(); p != nil {
				log.Error("stream handler panicked", "service", lim.Service, "peer", st.Conn().RemotePeer(), "panic", p)
				st.Reset()
			}
		}()
		if err := run(st, lim, serve); err != nil {
			log.Debug("stream failed", "service", lim.Service, "peer", st.Conn().RemotePeer(), "err", err)
			st.Reset()
			return
		}
		st.Close()
	}
}

func run(st network.Stream, lim Limits, serve func(network.Stream) error) error {
	if err := st.Scope().SetService(lim.Service); err != nil {
		return fmt.Errorf("attach to resource manager: %w", err)
	}
	if lim.Memory > 0 {
		if err := st.Scope().ReserveMemory(lim.Memory, network.ReservationPriorityAlways); err != nil {
			return fmt.Errorf("reserve memory: %w", err)
		}
		defer st.Scope().ReleaseMemory(lim.Memory)
	}
	st.SetDeadline(time.Now().Add(lim.Timeout))
	return serve(st)
}
