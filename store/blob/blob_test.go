package blob

import (
	"bytes"
	"errors"
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
