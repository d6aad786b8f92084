package blob

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestLayout(t *testing.T) {
	l := Layout{Size: 10, ChunkSize: 4, Chunks: 3}
	for i, want := range []int{20, 20, 18} {
		if got, err := l.CipherLen(uint64(i)); err != nil || got != want {
			t.Errorf("CipherLen(%d) = %d, %v, want %d", i, got, err, want)
		}
	}
	if _, err := l.CipherLen(3); !errors.Is(err, ErrRange) {
		t.Errorf("CipherLen(3) = %v, want ErrRange", err)
	}
	if got := l.CipherSize(); got != 58 {
		t.Errorf("CipherSize() = %d, want 58", got)
	}
}

func TestWriteReadReopen(t *testing.T) {
	d, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id := [32]byte{1}
	l := Layout{Size: 10, ChunkSize: 4, Chunks: 3}
	f, err := d.Open(id, l)
	if err != nil {
		t.Fatal(err)
	}
	chunks := [][]byte{bytes.Repeat([]byte{'a'}, 20), bytes.Repeat([]byte{'b'}, 20), bytes.Repeat([]byte{'c'}, 18)}
	for _, i := range []uint64{2, 0, 1} { // out of order, as a multi-source fetch writes
		if err := f.WriteChunk(i, chunks[i]); err != nil {
			t.Fatalf("WriteChunk(%d) = %v", i, err)
		}
	}
	if err := f.WriteChunk(0, make([]byte, 19)); !errors.Is(err, ErrRange) {
		t.Errorf("WriteChunk(short) = %v, want ErrRange", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f, err = d.Open(id, l)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, want := range chunks {
		got, err := f.ReadChunk(uint64(i), nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ReadChunk(%d) = %q, %v, want %q", i, got, err, want)
		}
	}
}

func TestReadMissingTail(t *testing.T) {
	d, _ := OpenDir(t.TempDir())
	f, err := d.Open([32]byte{2}, Layout{Size: 8, ChunkSize: 4, Chunks: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadChunk(1, nil); err == nil {
		t.Errorf("ReadChunk of a chunk never written past EOF = nil error, want one")
	}
}

// TestDirectAndLegacy: chunks written with O_DIRECT (or through the page cache where the file
// system refuses it) read back exactly, with the last chunk's padding not leaking into reads; a
// legacy packed file (".bin") is still read with its own stride.
func TestDirectAndLegacy(t *testing.T) {
	dirs := []string{t.TempDir()}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "blobtest")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(shm) })
			dirs = append(dirs, shm) // tmpfs: O_DIRECT is refused, writes fall back
		}
	}
	l := Layout{Size: 3*4096 + 100, ChunkSize: 4096, Chunks: 4}
	for _, dir := range dirs {
		d, err := OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		f, err := d.OpenDirect([32]byte{9}, l)
		if err != nil {
			t.Fatal(err)
		}
		var chunks [][]byte
		for i := range uint64(4) {
			n, _ := l.CipherLen(i)
			c := bytes.Repeat([]byte{byte('a' + i)}, n)
			chunks = append(chunks, c)
			if err := f.WriteChunk(i, c); err != nil {
				t.Fatalf("%s: WriteChunk(%d) = %v", dir, i, err)
			}
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		for i, want := range chunks {
			if got, err := f.ReadChunk(uint64(i), nil); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s (direct %v): ReadChunk(%d) = %d bytes, %v", dir, f.direct != nil, i, len(got), err)
			}
		}
		f.Close()
	}
	// A legacy file: slots packed at chunk size + tag.
	d, _ := OpenDir(t.TempDir())
	legacy := bytes.Join([][]byte{bytes.Repeat([]byte{'x'}, 20), bytes.Repeat([]byte{'y'}, 18)}, nil)
	if err := os.WriteFile(d.name([32]byte{3}, legacyExt), legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := d.OpenDirect([32]byte{3}, Layout{Size: 6, ChunkSize: 4, Chunks: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, err := f.ReadChunk(1, nil); err != nil || string(got) != strings.Repeat("y", 18) {
		t.Errorf("legacy ReadChunk(1) = %q, %v", got, err)
	}
	if err := d.Remove([32]byte{3}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.name([32]byte{3}, legacyExt)); !os.IsNotExist(err) {
		t.Errorf("Remove left the legacy file: %v", err)
	}
}

// TestDirectRefusedFallsBack: when the file system refuses an O_DIRECT write (EINVAL, here
// provoked with an unaligned slot), the chunk is written through the page cache instead, and so
// is every later one.
func TestDirectRefusedFallsBack(t *testing.T) {
	d, _ := OpenDir(t.TempDir())
	l := Layout{Size: 8192, ChunkSize: 4096, Chunks: 2}
	f, err := d.OpenDirect([32]byte{5}, l)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.direct == nil {
		t.Logf("this file system refuses O_DIRECT at open; the page-cache path is covered elsewhere")
		return
	}
	f.stride = l.stride(true) // 4112: an O_DIRECT write at this offset is refused
	c1 := bytes.Repeat([]byte{7}, 4096+Overhead)
	if err := f.WriteChunk(1, c1); err != nil {
		t.Fatalf("WriteChunk after a refused O_DIRECT write = %v, want the page-cache fallback", err)
	}
	if !f.directFailed.Load() {
		t.Errorf("the refused O_DIRECT write was not noticed")
	}
	if got, err := f.ReadChunk(1, nil); err != nil || !bytes.Equal(got, c1) {
		t.Errorf("ReadChunk(1) = %d bytes, %v", len(got), err)
	}
}
