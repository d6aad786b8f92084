package catalog

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
)

// Source is the catalog a server serves.
type Source interface {
	// Added lists, oldest first, the models added at or after since with the time each was
	// added; fn returns false to stop.
	Added(since time.Time, fn func(id [32]byte, at time.Time) bool) error
	// Manifest returns a model's signed manifest, or false when the model is not in the catalog.
	Manifest(id [32]byte) ([]byte, bool)
}

// Register installs the catalog handler on h.
func Register(h host.Host, src Source, log *slog.Logger) {
	h.SetStreamHandler(ID, wire.Handler(wire.Limits{Service: "califusion.catalog", Memory: MaxManifestSize, Timeout: Timeout}, log, func(st network.Stream) error {
		return serve(st, src)
	}))
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
