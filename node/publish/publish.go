// Package publish turns a file into a published model, in steps that each do one thing: check
// the request, package the file into an encrypted blob, sign the manifest, store everything in
// one transaction, anchor it, escrow its key with the lineage's coordinators, announce and
// provide it. Coordinators publish aggregated versions of a lineage the same way
// (PublishVersion).
package publish

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/store"
	"github.com/califusion/califusion/store/blob"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Chunks is the blob store a model is packaged into (fetch.ChunkStore).
type Chunks interface {
	Blobs() *blob.Dir
	// PutComplete records, inside tx, that every chunk of id is held, with its leaves.
	PutComplete(tx *store.Tx, id content.ModelID, leaves [][32]byte, chunks uint64) error
}

// Keys keeps content keys at rest (keys.Keyring).
type Keys interface {
	Put(tx *store.Tx, id content.ModelID, k content.Key) error
	// Hold keeps a key in memory only, never stored: what a coordinator of a threshold lineage
	// keeps of a version it published (keys.Keyring.Release wipes it).
	Hold(id content.ModelID, k content.Key)
}

// Catalog is where a published model is recorded and from where it is announced (catalog.Service).
type Catalog interface {
	Get(id content.ModelID) (*catalog.Record, error)
	StorePublished(tx *store.Tx, r *catalog.Record, added time.Time) error
	Published(r *catalog.Record, added time.Time)
	Announce(ctx context.Context, r *catalog.Record)
	Provide(ids ...content.ModelID)
}

// Anchoring anchors a signed manifest in Calimero (anchoring.Service).
type Anchoring interface {
	Put(ctx context.Context, signed []byte) error
}

// Escrow deposits a new model's key with the coordinators its lineage names, or for a threshold
// version each holder's share (keys.Client); it returns how many hold it, and an error that
// names the coordinators that failed when fewer hold it than a trainer needs.
type Escrow interface {
	Escrow(ctx context.Context, r *catalog.Record, k content.Key) (int, error)
}

// Config is what the publisher signs with and its defaults.
type Config struct {
	Self peer.ID
	Key  crypto.PrivKey // signs manifests
	// Payee is the principal a new lineage is paid to (the node's ICP account).
	Payee string
	// IsPublisher allows Publish; IsCoordinator makes this node a new lineage's default
	// coordinator.
	IsPublisher, IsCoordinator bool
	// ChunkSize is the default chunk size (transfer.chunk_size).
	ChunkSize uint64
	Log       *slog.Logger
}

// Deps are the services a publish writes to.
type Deps struct {
	Store     *store.Store
	Chunks    Chunks
	Keys      Keys
	Catalog   Catalog
	Anchoring Anchoring
	Escrow    Escrow
}

// Service publishes models.
type Service struct {
	cfg Config
	d   Deps
}

// New returns the publisher.
func New(cfg Config, d Deps) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, d: d}
}

// Params describe a model to publish.
type Params struct {
	Path, Name, Description, Price string
	ChunkSize                      uint64
	// Coordinators a new lineage root names (nil: the default, see defaultCoordinators).
	Coordinators []peer.ID
	// Threshold t ≥ 2 escrows each version's key t-of-n across the coordinators: each holds one
	// share, any t rebuild the key (0 or 1: each holds the whole key).
	Threshold uint
}

// Publish checks a publisher's request and publishes the file as a new lineage root. When fewer
// coordinators than the threshold hold their shares it returns the record with an error naming
// them (the model is published; `model escrow` retries).
func (s *Service) Publish(ctx context.Context, p Params) (*catalog.Record, error) {
	rec, _, err := s.PublishCounted(ctx, p)
	return rec, err
}

// PublishCounted is Publish that also says how many coordinators hold the new model's key (or
// their share of it), this node included.
func (s *Service) PublishCounted(ctx context.Context, p Params) (*catalog.Record, int, error) {
	if err := s.check(&p); err != nil {
		return nil, 0, err
	}
	rec, escrowed, err := s.publish(ctx, p, nil)
	if errors.Is(err, content.ErrManifest) {
		return nil, 0, apierr.Errorf(apierr.InvalidParams, "%v", err)
	}
	return rec, escrowed, err
}

// PublishVersion publishes the file at path as the next version of parent's lineage (this node
// must be its root's publisher or a coordinator it names). In a threshold lineage it splits the
// fresh key across the lineage's coordinators and deposits their shares; a coordinator (not the
// root's publisher) then stores only its own share and holds the whole key in memory
// (keys.Keyring.Hold) until the caller wipes it with keys.Keyring.Release(rec.ID). A shortfall of
// deposits is logged, not returned: the version is published and this node can deposit again.
func (s *Service) PublishVersion(ctx context.Context, path, name, description string, parent content.ModelID) (*catalog.Record, error) {
	rec, _, err := s.publish(ctx, Params{Path: path, Name: name, Description: description}, &parent)
	if rec != nil && err != nil {
		s.cfg.Log.Warn("version published, its key shares short", "err", err)
		return rec, nil
	}
	return rec, err
}

// check refuses what cannot be published, with the reason, and fills the defaults.
func (s *Service) check(p *Params) error {
	if !s.cfg.IsPublisher {
		return apierr.Errorf(apierr.Role, "this node is not a publisher: add %q to node.roles to use this method", "publisher")
	}
	if p.Path == "" || !filepath.IsAbs(p.Path) {
		return apierr.Errorf(apierr.InvalidParams, "path %q must be an absolute path to a file", p.Path)
	}
	if p.Name == "" {
		p.Name = filepath.Base(p.Path)
	}
	if p.Price == "" {
		p.Price = "0"
	}
	if v, ok := new(big.Int).SetString(p.Price, 10); !ok || v.Sign() < 0 {
		return apierr.Errorf(apierr.InvalidParams, "price %q must be a whole number of base units", p.Price)
	}
	if p.ChunkSize != 0 && (p.ChunkSize < content.MinChunkSize || p.ChunkSize > content.MaxChunkSize) {
		return apierr.Errorf(apierr.InvalidParams, "chunk_size must be between %d and %d bytes", content.MinChunkSize, content.MaxChunkSize)
	}
	if len(p.Coordinators) > content.MaxCoordinators {
		return apierr.Errorf(apierr.InvalidParams, "at most %d coordinators may be named", content.MaxCoordinators)
	}
	if p.Threshold >= 2 {
		n := len(p.Coordinators)
		if p.Coordinators == nil {
			n = len(s.defaultCoordinators())
		}
		if int(p.Threshold) > n {
			return apierr.Errorf(apierr.InvalidParams, "threshold %d needs at least %d coordinators, %d are named: name them with --coordinator PEER_ID (repeated) or lower --threshold", p.Threshold, p.Threshold, n)
		}
	}
	fi, err := os.Stat(p.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return apierr.Errorf(apierr.NotFound, "%s does not exist", p.Path)
	case err != nil:
		return apierr.Errorf(apierr.InvalidParams, "cannot read %s: %v", p.Path, err)
	case fi.IsDir():
		return apierr.Errorf(apierr.InvalidParams, "%s is a directory: publish a file", p.Path)
	}
	return nil
}

// publish runs the steps; parent is set for a version of an existing lineage. It returns how
// many coordinators hold the key (or their share) and, with the record, an escrow shortfall.
func (s *Service) publish(ctx context.Context, p Params, parentID *content.ModelID) (*catalog.Record, int, error) {
	// A version of a lineage needs its parent verified here and this node authorised by the root.
	var parent *catalog.Record
	if parentID != nil {
		var err error
		if parent, err = s.d.Catalog.Get(*parentID); err != nil {
			return nil, 0, fmt.Errorf("parent model: %w", err)
		}
		if l := parent.Lineage(); !parent.Authorises(s.cfg.Self) {
			return nil, 0, apierr.Errorf(apierr.Role, "lineage %x does not name this node as a coordinator: only its publisher or a coordinator it names may publish its versions", l[:8])
		}
	}
	key, err := content.NewKey()
	if err != nil {
		return nil, 0, err
	}
	defer key.Wipe()
	pkg, err := s.pack(ctx, p, key)
	if err != nil {
		return nil, 0, err
	}
	rec, err := s.sign(p, pkg, key, parent)
	if err != nil {
		s.d.Chunks.Blobs().Remove(pkg.tmpID)
		return nil, 0, err
	}
	if err := s.d.Chunks.Blobs().Rename(pkg.tmpID, rec.ID); err != nil {
		s.d.Chunks.Blobs().Remove(pkg.tmpID)
		return nil, 0, err
	}
	// The publisher of a lineage keeps its keys; a coordinator of a threshold lineage keeps only
	// its share of a version it publishes (deposited by Escrow) and the key in memory.
	keepWhole := !rec.Manifest.IsThreshold() || string(rec.RootRecord().Manifest.Publisher) == string(s.cfg.Self)
	if err := s.store(rec, pkg, key, keepWhole); err != nil {
		s.d.Chunks.Blobs().Remove(rec.ID)
		return nil, 0, err
	}
	if !keepWhole {
		s.d.Keys.Hold(rec.ID, key)
	}
	id := hex.EncodeToString(rec.ID[:])
	if err := s.d.Anchoring.Put(ctx, rec.Signed); err != nil {
		s.cfg.Log.Warn("anchor model", "model", id, "err", err)
	}
	got, escrowErr := s.d.Escrow.Escrow(ctx, rec, key)
	if got == 0 {
		s.cfg.Log.Warn("no coordinator holds the key yet: trainers cannot unlock this model", "model", id)
	}
	s.cfg.Log.Info("model published", "model", id, "name", rec.Manifest.Name, "size", rec.Manifest.Size, "chunks", rec.Manifest.Chunks, "escrowed", got, "threshold", rec.Manifest.Threshold)
	s.d.Catalog.Announce(ctx, rec)
	s.d.Catalog.Provide(rec.ID)
	return rec, got, escrowErr
}

// packed is a file packaged into a blob under a temporary ID (renamed once the ModelID is known).
type packed struct {
	*content.Packed
	tmpID     [32]byte
	size      uint64
	chunkSize uint64
	salt      []byte
}

// pack encrypts the file into a new blob, chunk by chunk.
func (s *Service) pack(ctx context.Context, p Params, key content.Key) (*packed, error) {
	f, err := os.Open(p.Path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p.Path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory: publish a file", p.Path)
	}
	size := uint64(fi.Size())
	chunkSize := p.ChunkSize
	if chunkSize == 0 {
		chunkSize = s.cfg.ChunkSize
	}
	if err := content.CheckSize(size, chunkSize); err != nil {
		return nil, apierr.Errorf(apierr.InvalidParams, "cannot publish %s: %v", p.Path, err)
	}
	out := &packed{size: size, chunkSize: chunkSize, salt: make([]byte, content.SaltSize)}
	rand.Read(out.salt)
	rand.Read(out.tmpID[:])
	layout := blob.Layout{Size: size, ChunkSize: chunkSize, Chunks: content.ChunkCount(size, chunkSize)}
	bf, err := s.d.Chunks.Blobs().Open(out.tmpID, layout)
	if err != nil {
		return nil, err
	}
	out.Packed, err = content.Package(ctx, f, size, chunkSize, key, out.salt, 2, bf.WriteChunk)
	if err == nil {
		err = bf.Sync()
	}
	bf.Close()
	if err != nil {
		s.d.Chunks.Blobs().Remove(out.tmpID)
		return nil, fmt.Errorf("package %s: %w", p.Path, err)
	}
	return out, nil
}

// defaultCoordinators are those a root names when its publisher names none: this node if it is a
// coordinator, else none. Never the coordinators heard of through presence: any peer can claim
// that role, and a named coordinator receives the model's key and runs its rounds.
func (s *Service) defaultCoordinators() []peer.ID {
	if s.cfg.IsCoordinator {
		return []peer.ID{s.cfg.Self}
	}
	return nil
}

// sign writes and signs the manifest. A version's price and payee are its root's.
func (s *Service) sign(p Params, pkg *packed, key content.Key, parent *catalog.Record) (*catalog.Record, error) {
	man, err := s.manifest(p, pkg, key, parent)
	if err != nil {
		return nil, err
	}
	signed, id, err := content.Sign(man, s.cfg.Key)
	if err != nil {
		return nil, err
	}
	rec := &catalog.Record{ID: id, Manifest: man, Signed: signed, Source: "published"}
	if rec.Root = rec; parent != nil {
		rec.Root = parent.RootRecord()
	}
	return rec, nil
}

// manifest writes the manifest of a new version: for a threshold lineage with the commitments to
// its key's shares, one per coordinator.
func (s *Service) manifest(p Params, pkg *packed, key content.Key, parent *catalog.Record) (*content.Manifest, error) {
	kc := key.Commitment()
	man := &content.Manifest{
		Name: p.Name, Description: p.Description, Size: pkg.size, ChunkSize: pkg.chunkSize, Chunks: pkg.Chunks,
		Root: pkg.Root[:], KeyCommitment: kc[:], Salt: pkg.salt, Price: p.Price,
		Payee: content.Account{Owner: s.cfg.Payee}, CreatedAt: time.Now().UnixMilli(),
	}
	if parent != nil {
		lineage, pid := parent.Lineage(), parent.ID
		man.Parent, man.Lineage = pid[:], lineage[:]
		// Payments for a lineage go to its root's account at its root's price, whoever publishes
		// a version of it; the manifest repeats them for display only.
		man.Payee, man.Price = parent.Payee(), parent.Price().String()
	} else {
		coords, how := p.Coordinators, "named by the publisher"
		if coords == nil {
			coords, how = s.defaultCoordinators(), "default"
		}
		for _, c := range coords {
			man.Coordinators = append(man.Coordinators, []byte(c))
		}
		if len(coords) == 0 {
			s.cfg.Log.Warn("the new lineage names no coordinator: no coordinator will hold its key or run its rounds (name them with model publish --coordinator PEER_ID)")
		} else {
			s.cfg.Log.Info("lineage coordinators", "coordinators", coords, "how", how, "threshold", p.Threshold)
		}
		man.Threshold = p.Threshold
		if p.Threshold >= 2 {
			_, commits, err := content.SplitKey(key, man.Salt, len(coords), int(p.Threshold))
			if err != nil {
				return nil, err
			}
			man.ShareCommitments = commits
		}
		return man, nil
	}
	// A version of a threshold lineage is split across the lineage's coordinators now.
	if coords, t := parent.CoordinatorSet(); t >= 2 {
		_, commits, err := content.SplitKey(key, man.Salt, len(coords), int(t))
		if err != nil {
			return nil, err
		}
		man.Threshold, man.ShareCommitments = t, commits
		for _, c := range coords {
			man.ShareHolders = append(man.ShareHolders, []byte(c))
		}
	}
	return man, nil
}

// store records the manifest, the leaves and a full have-bitmap, and the key (when keepWhole),
// in one transaction: a crash leaves all of it or none.
func (s *Service) store(rec *catalog.Record, pkg *packed, key content.Key, keepWhole bool) error {
	added := time.Now().UTC()
	err := s.d.Store.Update(func(tx *store.Tx) error {
		if err := s.d.Catalog.StorePublished(tx, rec, added); err != nil {
			return err
		}
		if err := s.d.Chunks.PutComplete(tx, rec.ID, pkg.Leaves, pkg.Chunks); err != nil {
			return err
		}
		if !keepWhole {
			return nil
		}
		return s.d.Keys.Put(tx, rec.ID, key)
	})
	if err != nil {
		return fmt.Errorf("record model: %w", err)
	}
	s.d.Catalog.Published(rec, added)
	return nil
}
