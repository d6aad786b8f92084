package catalog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// deriveRoot returns the lineage root of a verified manifest: nil for a root (it is its own).
// A child is admitted only if its parent is in the catalog and verified (so the parent's root
// is derived too), it claims exactly that root as its Lineage, and it is signed by the root's
// publisher or by a coordinator the root names.
func (s *Service) deriveRoot(id content.ModelID, man *content.Manifest) (*Record, error) {
	if man.IsRoot() {
		return nil, nil
	}
	pid := content.ModelID(man.Parent)
	parent, err := s.Get(pid)
	if err != nil {
		return nil, fmt.Errorf("model %x: %w (parent %x)", id[:6], ErrUnknownParent, pid[:6])
	}
	root := parent.RootRecord()
	if !bytes.Equal(man.Lineage, root.ID[:]) {
		return nil, fmt.Errorf("model %x: %w: it claims lineage %x, its parent's is %x", id[:6], ErrLineage, man.Lineage[:6], root.ID[:6])
	}
	// A coordinator update adds signers; the root's own list still verifies what it signed.
	signer, err := man.PublisherID()
	if err != nil || !root.Manifest.Authorises(signer) && !root.Authorises(signer) {
		return nil, fmt.Errorf("model %x: %w: its signer %s is neither the publisher of lineage %x nor a coordinator it names", id[:6], ErrLineage, signer, root.ID[:6])
	}
	return root, nil
}

// withRoot sets r.Root from its derived lineage.
func (s *Service) withRoot(r *Record) error {
	root, err := s.deriveRoot(r.ID, r.Manifest)
	if err != nil {
		return err
	}
	if root == nil {
		root = r
		r.Coordination = s.coordinationOf(r)
	}
	r.Root = root
	return nil
}

// Add stores a verified manifest in the catalog if it is new; it reports whether it was. A
// refusal (ErrUnknownParent, ErrLineage, ErrQuota, or a manifest that does not verify) is logged
// here, so callers need not.
func (s *Service) Add(signed []byte, source string) (*Record, bool, error) {
	// The ModelID is the hash of the signed bytes, so a manifest already in the catalog needs no
	// second signature check (catalog re-syncs repeat many).
	if known, err := s.Get(sha256.Sum256(signed)); err == nil {
		return known, false, nil
	}
	man, id, err := content.Open(signed)
	if err != nil {
		return nil, false, err
	}
	return s.addOpened(&Record{ID: id, Manifest: man, Signed: signed}, source)
}

// addOpened stores a manifest that content.Open verified, if it is new and its lineage verifies
// (deriveRoot) and its publisher is within its quota; it reports whether it was added. A
// refusal is logged here, so callers need not.
func (s *Service) addOpened(r *Record, source string) (*Record, bool, error) {
	if known, ok := s.verified.Load(r.ID); ok {
		return known.(*Record), false, nil
	}
	id, man, signed := r.ID, r.Manifest, r.Signed
	r = &Record{ID: id, Manifest: man, Signed: signed, Source: source}
	if err := s.withRoot(r); err != nil {
		s.log.Info("model refused", "model", hex.EncodeToString(id[:]), "source", source, "err", err)
		return nil, false, err
	}
	pub, err := man.PublisherID()
	if err != nil {
		return nil, false, err
	}
	if !s.reserveQuota(pub) {
		err := fmt.Errorf("model %x: %w (%d)", id[:6], ErrQuota, MaxCatalogPerPublisher)
		s.log.Info("model refused", "model", hex.EncodeToString(id[:]), "source", source, "publisher", pub, "err", err)
		return nil, false, err
	}
	added, now := false, time.Now().UTC()
	err = s.d.Store.Update(func(tx *store.Tx) error {
		has, err := tx.Has(store.ModelKey(id))
		if err != nil || has {
			return err
		}
		added = true
		return tx.Put(store.ModelKey(id), &store.ModelRecord{Manifest: signed, Source: source, Added: now})
	})
	if err != nil || !added {
		s.releaseQuota(pub)
	}
	if err != nil {
		return nil, false, err
	}
	if added {
		s.index.note(id, now)
		s.log.Info("model added to catalog", "model", hex.EncodeToString(id[:]), "name", man.Name, "source", source)
	}
	got, _ := s.verified.LoadOrStore(id, r)
	if fn := s.onAdded.Load(); added && fn != nil {
		(*fn)(got.(*Record))
	}
	return got.(*Record), added, nil
}

// StorePublished writes the record of a model this node publishes inside the publisher's
// transaction (with its leaves, have-bitmap and key). Call Published once tx has committed.
func (s *Service) StorePublished(tx *store.Tx, r *Record, added time.Time) error {
	return tx.Put(store.ModelKey(r.ID), &store.ModelRecord{Manifest: r.Signed, Source: "published", Added: added})
}

// Published enters a model StorePublished wrote, once its transaction committed: in the index
// (at added), in the verified cache (r.Root must be set: r itself for a root, else the parent's
// root), and in this node's publisher count.
func (s *Service) Published(r *Record, added time.Time) {
	if r.RootRecord() == r && r.Coordination == nil {
		r.Coordination = s.coordinationOf(r)
	}
	s.index.note(r.ID, added)
	s.verified.Store(r.ID, r)
	s.quotaMu.Lock()
	s.perPublisher[s.cfg.Self]++
	s.quotaMu.Unlock()
}

// reserveQuota counts one more catalog entry for pub, unless pub is at its cap (this node is
// never capped).
func (s *Service) reserveQuota(pub peer.ID) bool {
	s.quotaMu.Lock()
	defer s.quotaMu.Unlock()
	if pub != s.cfg.Self && s.perPublisher[pub] >= MaxCatalogPerPublisher {
		return false
	}
	s.perPublisher[pub]++
	return true
}

func (s *Service) releaseQuota(pub peer.ID) {
	s.quotaMu.Lock()
	s.perPublisher[pub]--
	s.quotaMu.Unlock()
}

// Known reports whether model id is in the catalog.
func (s *Service) Known(id [32]byte) bool {
	if _, ok := s.verified.Load(content.ModelID(id)); ok {
		return true
	}
	has, err := s.d.Store.Has(store.ModelKey(id))
	return err == nil && has
}

// Get returns a catalog entry; an unknown model's error wraps store.ErrNotFound. Manifests are
// immutable and named by their hash, so each is verified once when read from the store
// (signature, and its lineage from its parents) and then served from memory. A stored record
// whose lineage does not verify (a datadir from before lineages were checked) is not found; it
// is checked again on the next Get, since its parent may arrive later.
func (s *Service) Get(id content.ModelID) (*Record, error) {
	if r, ok := s.verified.Load(id); ok {
		return r.(*Record), nil
	}
	var rec store.ModelRecord
	if err := s.d.Store.Get(store.ModelKey(id), &rec); err != nil {
		return nil, err
	}
	return s.reverify(id, rec)
}

// reverify checks a stored record as addOpened would have and caches it.
func (s *Service) reverify(id content.ModelID, rec store.ModelRecord) (*Record, error) {
	man, got, err := content.Open(rec.Manifest)
	if err != nil || got != id {
		return nil, fmt.Errorf("%w: stored manifest of %x fails verification: %v", store.ErrNotFound, id[:6], err)
	}
	r := &Record{ID: id, Manifest: man, Signed: rec.Manifest, Source: rec.Source}
	if err := s.withRoot(r); err != nil {
		return nil, fmt.Errorf("%w: stored %v", store.ErrNotFound, err)
	}
	v, _ := s.verified.LoadOrStore(id, r)
	return v.(*Record), nil
}

// All lists the catalog.
func (s *Service) All() ([]*Record, error) {
	type pend struct {
		id  content.ModelID
		rec store.ModelRecord
	}
	var out []*Record
	var pending []pend // verified after the scan: a lineage check reads parents from the store
	err := s.d.Store.Scan(store.ModelPrefix(), func(_ store.Key, decode func(any) error) error {
		var rec store.ModelRecord
		if err := decode(&rec); err != nil {
			return err
		}
		id := content.ModelID(sha256.Sum256(rec.Manifest))
		if r, ok := s.verified.Load(id); ok {
			out = append(out, r.(*Record))
			return nil
		}
		pending = append(pending, pend{id, rec})
		return nil
	})
	for _, p := range pending {
		if r, err := s.reverify(p.id, p.rec); err == nil {
			out = append(out, r)
		} // a record that no longer verifies, or whose lineage does not, is skipped
	}
	return out, err
}
