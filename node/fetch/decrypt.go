package fetch

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/internal/fsutil"
	"github.com/califusion/califusion/store/blob"
)

func layoutOf(man *content.Manifest) blob.Layout {
	return blob.Layout{Size: man.Size, ChunkSize: man.ChunkSize, Chunks: man.Chunks}
}

// Complete reports whether this node holds every chunk of r, opening its blob for the caller to
// read.
func (s *Service) Complete(r *catalog.Record) bool {
	if _, err := s.chunks.prepare(r.ID, layoutOf(r.Manifest)); err != nil {
		return false
	}
	return s.chunks.Count(r.ID) == r.Manifest.Chunks
}

// LocalChunks returns how many chunks of r this node durably holds, opening no blob (listing
// the catalog must not open a file for each model in it).
func (s *Service) LocalChunks(r *catalog.Record) uint64 {
	return s.chunks.Held(r.ID, r.Manifest.Chunks)
}

// Decrypt writes the plaintext of a complete, unlocked model to w. It refuses a model not all
// here with ErrIncomplete and one whose key this node does not hold with ErrNotUnlocked; a
// model not in the catalog is the catalog's error (wrapping store.ErrNotFound).
func (s *Service) Decrypt(id content.ModelID, w io.Writer) (*catalog.Record, error) {
	rec, err := s.catalog.Get(id)
	if err != nil {
		return nil, err
	}
	if !s.Complete(rec) {
		return nil, fmt.Errorf("%w: %d of %d chunks are here; fetch the model first", ErrIncomplete, s.chunks.Count(id), rec.Manifest.Chunks)
	}
	key, err := s.keys.Get(id)
	if err != nil {
		return nil, ErrNotUnlocked
	}
	defer key.Wipe()
	return rec, content.Decrypt(w, rec.Manifest, key, func(i uint64, buf []byte) ([]byte, error) {
		return s.chunks.read(id, i, buf)
	})
}

// Plaintext decrypts a complete, unlocked model into memory, in a buffer of exactly its size.
func (s *Service) Plaintext(id content.ModelID) ([]byte, error) {
	var buf bytes.Buffer
	if rec, err := s.catalog.Get(id); err == nil {
		buf.Grow(int(rec.Manifest.Size))
	}
	if _, err := s.Decrypt(id, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Export decrypts a complete model into path, returning its size and SHA-256. The plaintext goes
// to a temporary file (mode 0600) beside path that is then moved into place, so no existing inode
// is ever written through (a link to a secret stays intact). A path that resolves to the
// datadir or into it is refused (fsutil.ErrInside), and so is an existing path unless overwrite
// is set (ErrExists; the no-overwrite move is a hard link, which cannot replace a file created
// meanwhile).
func (s *Service) Export(id content.ModelID, path string, overwrite bool) (uint64, [32]byte, error) {
	var sum [32]byte
	target, err := fsutil.Outside(s.cfg.Datadir, path)
	if err != nil {
		return 0, sum, err
	}
	if _, err := os.Lstat(target); err == nil && !overwrite {
		return 0, sum, fmt.Errorf("%w: %s", ErrExists, path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".part*")
	if err != nil {
		return 0, sum, fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	err = tmp.Chmod(0o600)
	var rec *catalog.Record
	if err == nil {
		rec, err = s.Decrypt(id, io.MultiWriter(tmp, h))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, sum, err
	}
	if overwrite {
		err = os.Rename(tmp.Name(), target)
	} else if err = os.Link(tmp.Name(), target); errors.Is(err, os.ErrExist) {
		return 0, sum, fmt.Errorf("%w: %s", ErrExists, path)
	} else if err != nil {
		// A file system without hard links: check again and rename.
		if _, lerr := os.Lstat(target); lerr == nil {
			return 0, sum, fmt.Errorf("%w: %s", ErrExists, path)
		}
		err = os.Rename(tmp.Name(), target)
	}
	if err != nil {
		return 0, sum, fmt.Errorf("move the export into %s: %w", path, err)
	}
	h.Sum(sum[:0])
	return rec.Manifest.Size, sum, nil
}
