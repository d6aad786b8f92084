package catalog

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/store"
)

// ErrHasChildren refuses to forget a manifest that is the parent of another known version: the
// child's lineage is derived from it.
var ErrHasChildren = errors.New("it is the parent of another version in this node's catalog")

// Children returns the known versions whose parent is id.
func (s *Service) Children(id content.ModelID) ([]*Record, error) {
	recs, err := s.All()
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, r := range recs {
		if bytes.Equal(r.Manifest.Parent, id[:]) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Forget removes model id's manifest from the catalog: the store record, the verified cache,
// the index that catalog sync answers from, its publisher's count and the peers that announced
// it. A manifest that is the parent of another known version is refused (ErrHasChildren); an
// unknown one's error wraps store.ErrNotFound. The model's chunks are the chunk store's (remove
// them first). A peer may send the manifest again later: a catalog sync or an announcement
// re-adds it as any new model.
func (s *Service) Forget(id content.ModelID) error {
	rec, err := s.Get(id)
	if err != nil {
		return err
	}
	kids, err := s.Children(id)
	if err != nil {
		return err
	}
	if len(kids) > 0 {
		return fmt.Errorf("model %x: %w (%x)", id[:6], ErrHasChildren, kids[0].ID[:6])
	}
	if err := s.d.Store.Delete(store.ModelKey(id)); err != nil {
		return err
	}
	s.verified.Delete(id)
	s.index.forget(id)
	if pub, err := rec.Manifest.PublisherID(); err == nil {
		s.releaseQuota(pub)
	}
	s.mu.Lock()
	delete(s.announced, id)
	s.mu.Unlock()
	s.log.Info("model forgotten", "model", hex.EncodeToString(id[:]), "name", rec.Manifest.Name)
	return nil
}

// forget drops id from the index.
func (x *Index) forget(id [32]byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := x.entries[:0]
	for _, e := range x.entries {
		if e.id != id {
			out = append(out, e)
		}
	}
	clear(x.entries[len(out):])
	x.entries = out
}
