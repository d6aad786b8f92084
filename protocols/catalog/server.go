package catalog

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Source is the catalog a server serves.
type Source interface {
	// Added lists, oldest first, the models added at or after since with the time each was
	// added; fn returns false to stop.
	Added(since time.Time, fn func(id [32]byte, at time.Time) bool) error
	// Manifest returns a model's signed manifest, or false when the model is not in the catalog.
	Manifest(id [32]byte) ([]byte, bool)
}

// ServerConfig bounds what a server spends on its peers.
type ServerConfig struct {
	// Allow, if set, is the per-peer request rate (see RequestBurst): it takes one request from
	// the peer's allowance and reports whether there was one. A stream it refuses is reset
	// before its request is read. Nil: no rate limit.
	Allow func(peer.ID) bool
}

// Server serves a catalog on a host.
type Server struct {
	h host.Host
}

// NewServer installs the catalog handler on h, serving src within cfg.
func NewServer(h host.Host, src Source, cfg ServerConfig, log *slog.Logger) *Server {
	lim := wire.Limits{Service: ServiceName, Memory: MaxManifestSize, Timeout: StreamTimeout, Allow: cfg.Allow}
	h.SetStreamHandler(ID, wire.Handler(lim, log, func(st network.Stream) error {
		return serve(st, src)
	}))
	return &Server{h: h}
}

// Close removes the catalog handler from the host; streams being served run to their end. It
// is idempotent.
func (s *Server) Close() error {
	s.h.RemoveStreamHandler(ID)
	return nil
}

func serve(st network.Stream, src Source) error {
	var req Request
	if err := wire.ReadFrame(st, MaxRequestSize, &req); err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if err := req.validate(); err != nil {
		return err
	}
	if len(req.Want) > 0 {
		return serveManifests(st, src, req.Want)
	}
	return serveIDs(st, src, req)
}

func serveIDs(st network.Stream, src Source, req Request) error {
	limit := int(req.Limit)
	if limit <= 0 || limit > MaxIDs {
		limit = MaxIDs
	}
	var since time.Time
	if req.Since > 0 {
		since = time.UnixMilli(req.Since)
	}
	began := time.Now()
	end := Entry{Done: true, Now: began.UnixMilli()}
	sent := 0
	var werr error
	err := src.Added(since, func(id [32]byte, at time.Time) bool {
		if sent == limit {
			// Cut here: the next page starts at this entry (IDs added in the same millisecond
			// are listed again, and the client skips those it knows).
			end.More, end.Now = true, at.UnixMilli()
			return false
		}
		if werr = wire.WriteFrame(st, &Entry{ID: id[:]}); werr != nil {
			return false
		}
		sent++
		return true
	})
	if werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	return wire.WriteFrame(st, &end)
}

func serveManifests(st network.Stream, src Source, want [][]byte) error {
	for _, id := range want {
		m, ok := src.Manifest([32]byte(id))
		if !ok || len(m) > MaxManifestSize { // never send what the client must refuse
			continue
		}
		if err := wire.WriteFrame(st, &Entry{Manifest: m}); err != nil {
			return err
		}
	}
	return wire.WriteFrame(st, &Entry{Done: true})
}
