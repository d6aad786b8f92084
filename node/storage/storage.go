// Package storage manages the model ciphertext a node keeps: it removes a model's local chunks
// (model rm), pins models, collects the versions superseded in their lineage (repo gc), reports
// what is held (repo stat), and enforces the storage cap (store.max_blob_bytes) by checking it
// periodically and after every completed fetch.
//
// The policy: a version is superseded when a descendant of it (a newer version of the same
// lineage) is held complete on this node. Garbage collection removes the ciphertext of
// superseded versions only, and never of a version this node published (it may be the only
// seeder), a pinned one, the base model of an open round this node coordinates, or one being
// fetched. Manifests stay in the catalog; only `model rm --forget` removes one.
package storage

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/fetch"
	"github.com/califusion/califusion/node/internal/tasks"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// DefaultCheckEvery is how often the storage cap is checked when Config.CheckEvery is 0.
const DefaultCheckEvery = time.Minute

// Config configures the storage service.
type Config struct {
	// Self is this node's peer ID: the versions it signed count as published by it.
	Self peer.ID
	// MaxBlobBytes is the storage cap (store.max_blob_bytes); 0 means none.
	MaxBlobBytes uint64
	// CheckEvery is how often the cap is checked (store.blob_check_interval).
	CheckEvery time.Duration
	// Log is the service's logger (nil: discard).
	Log *slog.Logger
}

// Deps are the services storage uses. Store, Catalog and Chunks are required; without Jobs no
// fetch counts as running, without Rounds no round protects its base, without Provider nothing
// stops being provided, without Keys no key counts as held.
type Deps struct {
	Store    *store.Store
	Catalog  Catalog
	Chunks   Chunks
	Jobs     Jobs
	Rounds   Rounds
	Provider Provider
	Keys     Keys
}

// Reasons a held version is kept by gc.
const (
	KeepPublished = "published" // this node published it: it may be the only seeder
	KeepPinned    = "pinned"
	KeepRound     = "open_round" // the base of an open round this node coordinates
	KeepFetching  = "fetching"
	KeepLatest    = "latest"    // no descendant is held complete here
	KeepUnderCap  = "under_cap" // superseded, but the cap was met without removing it
)

// Model is a model gc removed or kept, with the bytes its blob takes.
type Model struct {
	ID     content.ModelID
	Name   string
	Bytes  uint64
	Reason string // why it was kept (Keep*); empty for a removed one
}

// GCResult is what a collection removed and which held versions it kept.
type GCResult struct {
	Removed []Model
	Freed   uint64 // bytes of the removed blobs
	Kept    []Model
}

// Stat is what the node holds.
type Stat struct {
	Models       int    // manifests in the catalog
	Complete     int    // models held complete
	Partial      int    // models held in part
	BlobBytes    uint64 // bytes of every blob file
	KeysHeld     int    // catalog models whose content key this node holds
	Pinned       int
	MaxBlobBytes uint64 // the cap; 0: none
	Reclaimable  uint64 // bytes gc would free now
}

// RemoveResult is what model rm did.
type RemoveResult struct {
	Freed     uint64
	Forgotten bool
}

// Service is the storage service. New starts nothing; Start runs the cap check.
type Service struct {
	cfg Config
	d   Deps
	log *slog.Logger

	mu         sync.Mutex // serialises removals: gc, cap checks, model rm
	lastWarned uint64     // usage at the last over-cap warning, so it is not repeated every check

	kick chan struct{}
	bg   *tasks.Group
	once sync.Once
}

// New returns a storage service; it starts nothing.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Store == nil || deps.Catalog == nil || deps.Chunks == nil {
		return nil, errors.New("storage: store, catalog and chunk store are required")
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = DefaultCheckEvery
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, d: deps, log: log, kick: make(chan struct{}, 1)}, nil
}

// Start runs the storage cap check every Config.CheckEvery and after every completed fetch
// (Fetched); with no cap it does nothing.
func (s *Service) Start(ctx context.Context) error {
	s.bg = tasks.New(ctx)
	if s.cfg.MaxBlobBytes > 0 {
		s.bg.Go(s.capLoop)
	}
	return nil
}

// Close stops the cap check. It is safe to call more than once, and without Start.
func (s *Service) Close() error {
	s.once.Do(func() {
		if s.bg != nil {
			s.bg.Stop()
		}
	})
	return nil
}

// Fetched tells the service a fetch completed a model (fetch.Service.OnFetched): the cap is
// checked soon. It never blocks.
func (s *Service) Fetched(content.ModelID) {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Service) capLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.CheckEvery)
	defer t.Stop()
	s.Fetched(content.ModelID{}) // once at start
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		if _, err := s.EnforceCap(); err != nil {
			s.log.Warn("storage cap check", "err", err)
		}
	}
}

// held is a catalog model with what this node holds of it.
type held struct {
	r        *catalog.Record
	chunks   uint64 // held durably
	bytes    uint64 // of its blob file
	complete bool
}

func (h held) any() bool { return h.chunks > 0 || h.bytes > 0 }

// view is the catalog with local holdings, children and protections: what the policy decides on.
type view struct {
	models   []held
	byID     map[content.ModelID]int
	children map[content.ModelID][]content.ModelID
}

func (s *Service) look() (*view, error) {
	recs, err := s.d.Catalog.All()
	if err != nil {
		return nil, err
	}
	v := &view{byID: map[content.ModelID]int{}, children: map[content.ModelID][]content.ModelID{}}
	for _, r := range recs {
		n := s.d.Chunks.Held(r.ID, r.Manifest.Chunks)
		h := held{r: r, chunks: n, complete: r.Manifest.Chunks > 0 && n == r.Manifest.Chunks}
		h.bytes = s.d.Chunks.DiskBytes(r.ID)
		v.byID[r.ID] = len(v.models)
		v.models = append(v.models, h)
		if len(r.Manifest.Parent) == 32 {
			p := content.ModelID(r.Manifest.Parent)
			v.children[p] = append(v.children[p], r.ID)
		}
	}
	return v, nil
}

// superseded reports whether a descendant of id is held complete.
func (v *view) superseded(id content.ModelID) bool {
	queue := append([]content.ModelID(nil), v.children[id]...)
	seen := map[content.ModelID]bool{}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if seen[c] {
			continue
		}
		seen[c] = true
		if i, ok := v.byID[c]; ok && v.models[i].complete {
			return true
		}
		queue = append(queue, v.children[c]...)
	}
	return false
}

// publishedHere reports whether this node published r (it signed it, or stored it as published).
func (s *Service) publishedHere(r *catalog.Record) bool {
	if r.Source == "published" {
		return true
	}
	pub, err := r.Manifest.PublisherID()
	return err == nil && s.cfg.Self != "" && pub == s.cfg.Self
}

// Pinned reports whether model id is pinned.
func (s *Service) Pinned(id content.ModelID) bool {
	has, err := s.d.Store.Has(store.PinKey(id))
	return err == nil && has
}

func (s *Service) openBases() map[content.ModelID]bool {
	out := map[content.ModelID]bool{}
	if s.d.Rounds != nil {
		for _, id := range s.d.Rounds.OpenBases() {
			out[id] = true
		}
	}
	return out
}

// fetching returns the ID of the fetch job of id that is running, if any.
func (s *Service) fetching(id content.ModelID) (string, bool) {
	if s.d.Jobs == nil {
		return "", false
	}
	return s.d.Jobs.Running(fetch.JobKind, hex.EncodeToString(id[:]))
}

// keepReason says why a held model must stay (empty: gc may remove it).
func (s *Service) keepReason(v *view, h held, bases map[content.ModelID]bool) string {
	switch {
	case s.publishedHere(h.r):
		return KeepPublished
	case s.Pinned(h.r.ID):
		return KeepPinned
	case bases[h.r.ID]:
		return KeepRound
	}
	if _, ok := s.fetching(h.r.ID); ok {
		return KeepFetching
	}
	if !v.superseded(h.r.ID) {
		return KeepLatest
	}
	return ""
}

// plan sorts the held models into what gc may remove (oldest first) and what it keeps.
func (s *Service) plan(v *view) (remove, keep []Model) {
	bases := s.openBases()
	for _, h := range v.models {
		if !h.any() {
			continue
		}
		m := Model{ID: h.r.ID, Name: h.r.Manifest.Name, Bytes: h.bytes}
		if m.Reason = s.keepReason(v, h, bases); m.Reason != "" {
			keep = append(keep, m)
		} else {
			remove = append(remove, m)
		}
	}
	created := func(id content.ModelID) time.Time { return v.models[v.byID[id]].r.Manifest.Created() }
	sort.SliceStable(remove, func(i, j int) bool { return created(remove[i].ID).Before(created(remove[j].ID)) })
	return remove, keep
}

// GC removes the ciphertext of every version superseded in its lineage that nothing protects.
func (s *Service) GC() (GCResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.collect(func(uint64) bool { return true })
}

// EnforceCap runs gc while the blob files take more than the cap, oldest superseded version
// first, and logs a warning naming what would need to go when that is not enough. With no cap,
// or under it, it removes nothing.
func (s *Service) EnforceCap() (GCResult, error) {
	limit := s.cfg.MaxBlobBytes
	if limit == 0 {
		return GCResult{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	used, err := s.d.Chunks.Usage()
	if err != nil || used <= limit {
		if err == nil {
			s.lastWarned = 0
		}
		return GCResult{}, err
	}
	res, err := s.collect(func(freed uint64) bool { return used-min(freed, used) > limit })
	if err != nil {
		return res, err
	}
	if used -= min(res.Freed, used); used > limit {
		if used != s.lastWarned {
			s.lastWarned = used
			var names []string
			for _, m := range res.Kept {
				names = append(names, fmt.Sprintf("%x %s (%d bytes, %s)", m.ID[:8], m.Name, m.Bytes, m.Reason))
			}
			s.log.Warn("storage cap exceeded: what is left is published, pinned, in use or the latest of its lineage; remove some with model rm, unpin some, or raise store.max_blob_bytes",
				"used_bytes", used, "cap_bytes", limit, "would_need_to_go", names)
		}
	} else {
		s.lastWarned = 0
	}
	return res, nil
}

// collect removes the removable models, oldest first, while more(bytes freed so far) holds.
// Call with s.mu held.
func (s *Service) collect(more func(freed uint64) bool) (GCResult, error) {
	v, err := s.look()
	if err != nil {
		return GCResult{}, err
	}
	remove, keep := s.plan(v)
	res := GCResult{Kept: keep}
	for i, m := range remove {
		if !more(res.Freed) {
			for _, rest := range remove[i:] {
				rest.Reason = KeepUnderCap
				res.Kept = append(res.Kept, rest)
			}
			break
		}
		if err := s.drop(m.ID); err != nil {
			return res, err
		}
		s.log.Info("superseded version removed", "model", hex.EncodeToString(m.ID[:]), "name", m.Name, "bytes", m.Bytes)
		res.Removed = append(res.Removed, m)
		res.Freed += m.Bytes
	}
	return res, nil
}

// drop removes a model's ciphertext and stops providing it.
func (s *Service) drop(id content.ModelID) error {
	if err := s.d.Chunks.Remove(id); err != nil {
		return err
	}
	if s.d.Provider != nil {
		if err := s.d.Provider.StopProviding(catalog.ModelCID(id).Hash()); err != nil {
			s.log.Debug("stop providing", "model", hex.EncodeToString(id[:]), "err", err)
		}
	}
	return nil
}

// Remove drops model id's local chunks and stops providing it; with forget its manifest leaves
// the catalog too. It refuses, with an *apierr.Error: an unknown model (NotFound); a model being
// fetched (Conflict: the fetch is not cancelled, so nothing fetched is lost by surprise); a pinned
// one, the base of an open round this node coordinates, and, unless force, one this node
// published (Conflict); forgetting the parent of another known version (Conflict).
func (s *Service) Remove(id content.ModelID, forget, force bool) (RemoveResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	short := hex.EncodeToString(id[:8])
	r, err := s.d.Catalog.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		return RemoveResult{}, apierr.Errorf(apierr.NotFound, "model %s is not in this node's catalog", hex.EncodeToString(id[:]))
	}
	if err != nil {
		return RemoveResult{}, err
	}
	if job, ok := s.fetching(id); ok {
		return RemoveResult{}, apierr.Errorf(apierr.Conflict, "model %s is being fetched (job %s): wait for the fetch to end or cancel the job, then remove it", short, job)
	}
	if s.Pinned(id) {
		return RemoveResult{}, apierr.Errorf(apierr.Conflict, "model %s is pinned: unpin it first (model unpin %s)", short, short)
	}
	if s.openBases()[id] {
		return RemoveResult{}, apierr.Errorf(apierr.Conflict, "model %s is the base of an open round this node coordinates: close the round first", short)
	}
	if s.publishedHere(r) && !force {
		return RemoveResult{}, apierr.Errorf(apierr.Conflict, "this node published model %s and may be its only seeder: pass force (model rm --force) to remove it anyway", short)
	}
	if forget {
		kids, err := s.children(id)
		if err != nil {
			return RemoveResult{}, err
		}
		if len(kids) > 0 {
			return RemoveResult{}, &apierr.Error{Code: apierr.Conflict,
				Message: fmt.Sprintf("model %s is the parent of version %x in this node's catalog and cannot be forgotten: remove its chunks without forget", short, kids[0][:8]),
				Data:    map[string]any{"children": hexIDs(kids)}}
		}
	}
	res := RemoveResult{Freed: s.d.Chunks.DiskBytes(id)}
	if err := s.drop(id); err != nil {
		return res, err
	}
	s.log.Info("model chunks removed", "model", hex.EncodeToString(id[:]), "name", r.Manifest.Name, "bytes", res.Freed)
	if forget {
		if err := s.d.Catalog.Forget(id); errors.Is(err, catalog.ErrHasChildren) {
			return res, apierr.Errorf(apierr.Conflict, "model %s became the parent of another version: its chunks are removed, its manifest stays", short)
		} else if err != nil {
			return res, err
		}
		res.Forgotten = true
		if err := s.d.Store.Delete(store.PinKey(id)); err != nil {
			return res, err
		}
	}
	return res, nil
}

// children returns the catalog versions whose parent is id (from the manifests alone: look
// would also read every model's bitmap and stat its blob).
func (s *Service) children(id content.ModelID) ([]content.ModelID, error) {
	recs, err := s.d.Catalog.All()
	if err != nil {
		return nil, err
	}
	var out []content.ModelID
	for _, r := range recs {
		if bytes.Equal(r.Manifest.Parent, id[:]) {
			out = append(out, r.ID)
		}
	}
	return out, nil
}

func hexIDs(ids []content.ModelID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = hex.EncodeToString(id[:])
	}
	return out
}

// Pin pins (or unpins) model id: gc and the cap never remove a pinned model's ciphertext. An
// unknown model is NotFound. Pinning does not fetch.
func (s *Service) Pin(id content.ModelID, pinned bool) error {
	if _, err := s.d.Catalog.Get(id); errors.Is(err, store.ErrNotFound) {
		return apierr.Errorf(apierr.NotFound, "model %s is not in this node's catalog", hex.EncodeToString(id[:]))
	} else if err != nil {
		return err
	}
	if !pinned {
		return s.d.Store.Delete(store.PinKey(id))
	}
	return s.d.Store.Put(store.PinKey(id), &store.Pin{At: time.Now().UTC()})
}

// Stat reports what the node holds.
func (s *Service) Stat() (Stat, error) {
	v, err := s.look()
	if err != nil {
		return Stat{}, err
	}
	st := Stat{Models: len(v.models), MaxBlobBytes: s.cfg.MaxBlobBytes}
	for _, h := range v.models {
		switch {
		case h.complete:
			st.Complete++
		case h.any():
			st.Partial++
		}
		if s.d.Keys != nil && s.d.Keys.Has(h.r.ID) {
			st.KeysHeld++
		}
	}
	if st.BlobBytes, err = s.d.Chunks.Usage(); err != nil {
		return st, err
	}
	err = s.d.Store.Scan(store.PinPrefix(), func(store.Key, func(any) error) error { st.Pinned++; return nil })
	if err != nil {
		return st, err
	}
	remove, _ := s.plan(v)
	for _, m := range remove {
		st.Reclaimable += m.Bytes
	}
	return st, nil
}
