package catalog

import (
	"context"
	"errors"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/calimero"
)

// fillFromAnchors adds every validly anchored manifest to the catalog: a late joiner learns
// models even when no peer that knows them is online.
func (s *Service) fillFromAnchors(ctx context.Context) {
	a := s.d.Anchors
	if a == nil || !a.On() {
		return
	}
	for {
		s.fillOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Minute):
		}
	}
}

// fillOnce reads the anchors once and admits what it can.
func (s *Service) fillOnce(ctx context.Context) {
	a := s.d.Anchors
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	records, invalid, err := a.List(lctx, func(r []byte) error { _, _, err := content.Open(r); return err })
	cancel()
	if err != nil {
		s.log.Debug("read anchors", "err", err)
	}
	// Anchors come in no particular order: a version whose parent comes later is admitted
	// on a further pass (Add checks every lineage).
	for progress := true; progress && len(records) > 0; {
		progress = false
		var later [][]byte
		for _, r := range records {
			rec, _, err := s.Add(r, "anchor")
			switch {
			case err == nil:
				a.Remember(rec.ID, calimero.StateVerified)
				progress = true
			case errors.Is(err, ErrUnknownParent):
				later = append(later, r)
			}
		}
		records = later
	}
	if invalid > 0 {
		s.log.Warn("calimero context holds invalid anchors", "count", invalid)
	}
}
