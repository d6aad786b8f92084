package catalog

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
)

// Source lists the signed manifests a node added at or after since; fn returns false to stop.
type Source func(since time.Time, fn func(signedManifest []byte) bool) error

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
	limit := int(req.Limit)
	if limit <= 0 || limit > MaxEntries {
		limit = MaxEntries
	}
	sent := 0
	began := time.Now()
	var werr error
	var since time.Time
	if req.Since > 0 {
		since = time.UnixMilli(req.Since)
	}
	err := src(since, func(m []byte) bool {
		if len(m) > MaxManifestSize {
			return true // never send what the client must refuse
		}
		if werr = wire.WriteFrame(st, &Entry{Manifest: m}); werr != nil {
			return false
		}
		sent++
		return sent < limit
	})
	if werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	return wire.WriteFrame(st, &Entry{Done: true, Now: began.UnixMilli()})
}
