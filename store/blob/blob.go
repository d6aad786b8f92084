// Package blob keeps models' ciphertext in files beside the badger store: one sparse file per
// model, chunk i at offset i × (chunk size + GCM tag). Which chunks are present is not this
// package's business: the caller records a chunk as present (in the store) only after Sync has
// made it durable, so a crash can lose unrecorded chunks but never yields a corrupt one.
package blob

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Overhead is the AES-GCM tag each ciphertext chunk carries beyond its plaintext.
const Overhead = 16

// ErrRange is returned for a chunk index or length that does not fit the layout.
var ErrRange = errors.New("chunk out of range")

// Layout describes how a model's plaintext is cut into chunks.
type Layout struct {
	Size      uint64 // plaintext bytes
	ChunkSize uint64 // plaintext bytes per chunk (the last may be shorter)
	Chunks    uint64
}

// CipherLen returns the ciphertext length of chunk i.
func (l Layout) CipherLen(i uint64) (int, error) {
	if i >= l.Chunks {
		return 0, fmt.Errorf("%w: index %d of %d", ErrRange, i, l.Chunks)
	}
	plain := l.ChunkSize
	if i == l.Chunks-1 {
		plain = l.Size - i*l.ChunkSize
	}
	return int(plain) + Overhead, nil
}

// CipherSize is the total ciphertext size.
func (l Layout) CipherSize() uint64 { return l.Size + l.Chunks*Overhead }

func (l Layout) offset(i uint64) int64 { return int64(i * (l.ChunkSize + Overhead)) }

// Dir is the folder of blob files.
type Dir struct{ path string }

// OpenDir creates (mode 0700) and returns the blob folder at path.
func OpenDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("create blob dir: %w", err)
	}
	return &Dir{path: path}, nil
}

func (d *Dir) name(id [32]byte) string {
	return filepath.Join(d.path, hex.EncodeToString(id[:])+".bin")
}

// Open opens (creating if needed) the blob of model id with layout l.
func (d *Dir) Open(id [32]byte, l Layout) (*File, error) {
	f, err := os.OpenFile(d.name(id), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open blob %x: %w", id[:6], err)
	}
	return &File{f: f, layout: l}, nil
}

// Remove deletes the blob of model id.
func (d *Dir) Remove(id [32]byte) error {
	err := os.Remove(d.name(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// File is one model's ciphertext. It is safe for concurrent use.
type File struct {
	mu     sync.Mutex
	f      *os.File
	layout Layout
}

// Layout returns the file's layout.
func (b *File) Layout() Layout { return b.layout }

// WriteChunk writes chunk i; it is durable only after Sync.
func (b *File) WriteChunk(i uint64, ct []byte) error {
	n, err := b.layout.CipherLen(i)
	if err != nil {
		return err
	}
	if len(ct) != n {
		return fmt.Errorf("%w: chunk %d is %d bytes, want %d", ErrRange, i, len(ct), n)
	}
	if _, err := b.f.WriteAt(ct, b.layout.offset(i)); err != nil {
		return fmt.Errorf("write chunk %d: %w", i, err)
	}
	return nil
}

// ReadChunk reads chunk i into buf (grown as needed) and returns it.
func (b *File) ReadChunk(i uint64, buf []byte) ([]byte, error) {
	n, err := b.layout.CipherLen(i)
	if err != nil {
		return nil, err
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := b.f.ReadAt(buf, b.layout.offset(i)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read chunk %d: %w", i, err)
	}
	return buf, nil
}

// Sync makes every written chunk durable.
func (b *File) Sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.f.Sync(); err != nil {
		return fmt.Errorf("sync blob: %w", err)
	}
	return nil
}

// Close closes the file.
func (b *File) Close() error { return b.f.Close() }

// Rename moves the blob of model from to model to (a publish writes under a temporary ID until
// the manifest, and so the ModelID, is known).
func (d *Dir) Rename(from, to [32]byte) error {
	if err := os.Rename(d.name(from), d.name(to)); err != nil {
		return fmt.Errorf("rename blob: %w", err)
	}
	return nil
}
