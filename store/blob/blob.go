// Package blob keeps models' ciphertext in files beside the badger store: one sparse file per
// model, chunk i in a slot at offset i × stride, where the stride is the chunk size plus the GCM
// tag rounded up to 4 KiB. Aligned slots let chunks be written with O_DIRECT, straight from the
// process's buffer to the device, where the file system supports it: on a busy machine copying
// every chunk into the page cache cost more CPU than the network and the hashing together
// (BENCHMARKS.md; see OpenDirect). Files from before aligned slots (".bin", stride without rounding) are still
// read and written, through the page cache.
//
// Which chunks are present is not this package's business: the caller records a chunk as
// present (in the store) only after Sync has made it durable, so a crash can lose unrecorded
// chunks but never yields a corrupt one.
package blob

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
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

// align is the slot alignment of current blob files (and of O_DIRECT transfers).
const align = 4096

func alignUp(n uint64) uint64 { return (n + align - 1) / align * align }

// stride is the distance between slots: aligned for current files, packed for legacy ones.
func (l Layout) stride(legacy bool) uint64 {
	if legacy {
		return l.ChunkSize + Overhead
	}
	return alignUp(l.ChunkSize + Overhead)
}

// Dir is the folder of blob files.
type Dir struct{ path string }

// OpenDir creates (mode 0700) and returns the blob folder at path.
func OpenDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("create blob dir: %w", err)
	}
	return &Dir{path: path}, nil
}

// File names: current files have aligned slots; legacy files packed ones.
const (
	ext       = ".blob"
	legacyExt = ".bin"
)

func (d *Dir) name(id [32]byte, extension string) string {
	return filepath.Join(d.path, hex.EncodeToString(id[:])+extension)
}

// Open opens (creating if needed) the blob of model id with layout l; writes go through the page
// cache, so what was just written is read back from memory (a publisher seeds what it packed).
func (d *Dir) Open(id [32]byte, l Layout) (*File, error) { return d.open(id, l, false) }

// OpenDirect is Open with writes that bypass the page cache (O_DIRECT) where the file system
// allows it: for chunks arriving from the network, which copying into the page cache made the
// fetching daemon's largest CPU cost.
func (d *Dir) OpenDirect(id [32]byte, l Layout) (*File, error) { return d.open(id, l, true) }

func (d *Dir) open(id [32]byte, l Layout, direct bool) (*File, error) {
	if f, err := os.OpenFile(d.name(id, legacyExt), os.O_RDWR, 0o600); err == nil {
		return &File{f: f, layout: l, stride: l.stride(true)}, nil
	}
	name := d.name(id, ext)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open blob %x: %w", id[:6], err)
	}
	b := &File{f: f, layout: l, stride: l.stride(false)}
	if direct {
		b.direct = openDirect(name) // nil where the file system refuses O_DIRECT (tmpfs)
	}
	return b, nil
}

// Remove deletes the blob of model id.
func (d *Dir) Remove(id [32]byte) error {
	var errs []error
	for _, e := range []string{ext, legacyExt} {
		if err := os.Remove(d.name(id, e)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// File is one model's ciphertext. It is safe for concurrent use.
type File struct {
	mu     sync.Mutex
	f      *os.File
	direct *os.File // the same file opened with O_DIRECT, for writes; nil when unavailable
	// directFailed is set when the file system refused an O_DIRECT write (EINVAL).
	directFailed atomic.Bool
	layout       Layout
	stride       uint64
}

func (b *File) offset(i uint64) int64 { return int64(i * b.stride) }

// slots are aligned buffers for O_DIRECT writes.
var slots sync.Pool

// Buffer returns a buffer of n bytes that WriteChunk can hand to the device without copying it
// again (its address is aligned and its capacity reaches the slot's padded end). Give it back
// with Release once written.
func Buffer(n int) []byte {
	padded := int(alignUp(uint64(n)))
	if p, ok := slots.Get().(*[]byte); ok && cap(*p) >= padded {
		return (*p)[:n]
	}
	raw := make([]byte, padded+align)
	off := (align - int(uintptr(unsafe.Pointer(&raw[0]))%align)) % align
	return raw[off : off+n : off+padded]
}

// Release returns a Buffer for reuse.
func Release(buf []byte) { slots.Put(&buf) }

// isDirectBuffer reports whether ct can be written with O_DIRECT in place.
func isDirectBuffer(ct []byte) bool {
	return len(ct) > 0 && uintptr(unsafe.Pointer(&ct[0]))%align == 0 && uint64(cap(ct)) >= alignUp(uint64(len(ct)))
}

// Layout returns the file's layout.
func (b *File) Layout() Layout { return b.layout }

// WriteChunk writes chunk i; it is durable only after Sync. Given a Buffer, an O_DIRECT write
// uses it in place (zeroing its padding beyond len); any other slice is copied first.
func (b *File) WriteChunk(i uint64, ct []byte) error {
	n, err := b.layout.CipherLen(i)
	if err != nil {
		return err
	}
	if len(ct) != n {
		return fmt.Errorf("%w: chunk %d is %d bytes, want %d", ErrRange, i, len(ct), n)
	}
	if b.direct != nil && !b.directFailed.Load() {
		if err = b.writeDirect(i, ct, n); err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("write chunk %d: %w", i, err)
		}
		// Some file systems accept O_DIRECT at open and refuse it at write: from now on this
		// file is written through the page cache.
		b.directFailed.Store(true)
	}
	if _, err = b.f.WriteAt(ct, b.offset(i)); err != nil {
		return fmt.Errorf("write chunk %d: %w", i, err)
	}
	return nil
}

// writeDirect writes chunk i (n bytes of ct) with O_DIRECT, padded to its aligned slot.
func (b *File) writeDirect(i uint64, ct []byte, n int) error {
	buf := ct
	if !isDirectBuffer(ct) {
		buf = Buffer(n)
		copy(buf, ct)
		defer Release(buf)
	}
	padded := buf[:alignUp(uint64(n))]
	clear(padded[n:])
	_, err := b.direct.WriteAt(padded, b.offset(i))
	return err
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
	if _, err := b.f.ReadAt(buf, b.offset(i)); err != nil {
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
func (b *File) Close() error {
	if b.direct != nil {
		b.direct.Close()
	}
	return b.f.Close()
}

// Rename moves the blob of model from to model to (a publish writes under a temporary ID until
// the manifest, and so the ModelID, is known).
func (d *Dir) Rename(from, to [32]byte) error {
	if err := os.Rename(d.name(from, ext), d.name(to, ext)); err != nil {
		return fmt.Errorf("rename blob: %w", err)
	}
	return nil
}

// Size returns the bytes the blob files of model id take (0 when it has none).
func (d *Dir) Size(id [32]byte) uint64 {
	var n uint64
	for _, e := range []string{ext, legacyExt} {
		if fi, err := os.Stat(d.name(id, e)); err == nil {
			n += uint64(fi.Size())
		}
	}
	return n
}

// Usage returns how many blob files the folder holds and the bytes they take together.
func (d *Dir) Usage() (files int, bytes uint64, err error) {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return 0, 0, fmt.Errorf("read blob dir: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || (filepath.Ext(e.Name()) != ext && filepath.Ext(e.Name()) != legacyExt) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		files++
		bytes += uint64(fi.Size())
	}
	return files, bytes, nil
}
