package catalog

import (
	"errors"
	"fmt"
	"sync"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/store"
)

// Refusals of coordinator updates.
var (
	ErrUnknownLineage = errors.New("its lineage root is not in this node's catalog")
	ErrStaleUpdate    = errors.New("a coordinator update with the same or a higher seq is on record")
)

// Coordination is a lineage's current coordinator update (none: its root's coordinators hold),
// shared by every record of the lineage through their root.
type Coordination struct {
	mu     sync.Mutex
	update *content.CoordinatorUpdate
	signed []byte
}

// NewCoordination returns a lineage's coordination with no update yet.
func NewCoordination() *Coordination { return &Coordination{} }

// Current returns the update in force and its signed bytes, or nil.
func (c *Coordination) Current() (*content.CoordinatorUpdate, []byte) {
	if c == nil {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.update, c.signed
}

// Apply makes a verified update current if its Seq is above the current one's; the same update
// again is no change (false, nil), a lower or conflicting one ErrStaleUpdate. keep, when set, is
// called first and must succeed (it persists the update).
func (c *Coordination) Apply(u *content.CoordinatorUpdate, signed []byte, keep func() error) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.update != nil && c.update.Seq >= u.Seq {
		if string(c.signed) == string(signed) {
			return false, nil
		}
		return false, fmt.Errorf("%w: seq %d, the current is %d", ErrStaleUpdate, u.Seq, c.update.Seq)
	}
	if keep != nil {
		if err := keep(); err != nil {
			return false, err
		}
	}
	c.update, c.signed = u, append([]byte(nil), signed...)
	return true, nil
}

// coordinationOf returns root's lineage's coordination, loading its update from the store the
// first time.
func (s *Service) coordinationOf(root *Record) *Coordination {
	if v, ok := s.coords.Load(root.ID); ok {
		return v.(*Coordination)
	}
	co := NewCoordination()
	var signed []byte
	if err := s.d.Store.Get(store.CoordSetKey(root.ID), &signed); err == nil {
		if u, err := content.OpenCoordinatorUpdate(signed, root.ID, root.Manifest); err == nil {
			co.update, co.signed = u, signed
		} else {
			s.log.Warn("stored coordinator update does not verify", "lineage", fmt.Sprintf("%x", root.ID[:6]), "err", err)
		}
	}
	v, _ := s.coords.LoadOrStore(root.ID, co)
	return v.(*Coordination)
}

// SetCoordinators admits a signed coordinator update of a lineage in this catalog: it must be
// signed by the lineage root's publisher and numbered above the update on record. It returns the
// update and whether it changed the lineage's coordinators.
func (s *Service) SetCoordinators(signed []byte) (*content.CoordinatorUpdate, bool, error) {
	lineage, err := content.CoordinatorUpdateLineage(signed)
	if err != nil {
		return nil, false, err
	}
	root, err := s.Get(lineage)
	if err != nil {
		return nil, false, fmt.Errorf("lineage %x: %w", lineage[:6], ErrUnknownLineage)
	}
	if !root.Manifest.IsRoot() {
		return nil, false, fmt.Errorf("%w: model %x is not a lineage root", content.ErrCoordinatorUpdate, lineage[:6])
	}
	u, err := content.OpenCoordinatorUpdate(signed, root.ID, root.Manifest)
	if err != nil {
		return nil, false, err
	}
	co := root.Coordination
	if co == nil {
		co = s.coordinationOf(root)
	}
	changed, err := co.Apply(u, signed, func() error { return s.d.Store.PutSync(store.CoordSetKey(lineage), signed) })
	if changed {
		s.log.Info("lineage coordinators updated", "lineage", fmt.Sprintf("%x", lineage[:6]), "seq", u.Seq, "coordinators", u.CoordinatorIDs(), "threshold", u.Threshold)
	}
	return u, changed, err
}
