package node

import (
	"bytes"
	"errors"
	"testing"

	"github.com/califusion/califusion/store"
	"github.com/califusion/califusion/store/blob"
)

func TestChunkStoreFlushMarksPresence(t *testing.T) {
	dir := t.TempDir()
	open := func() (*store.Store, *chunkStore) {
		st, err := store.Open(dir+"/db", store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		bd, err := blob.OpenDir(dir + "/blobs")
		if err != nil {
			t.Fatal(err)
		}
		return st, newChunkStore(st, bd)
	}
	id := [32]byte{7}
	l := blob.Layout{Size: 10, ChunkSize: 4, Chunks: 3}
	st, cs := open()
	if _, err := cs.prepare(id, l); err != nil {
		t.Fatal(err)
	}
	c0 := bytes.Repeat([]byte{1}, 20)
	c2 := bytes.Repeat([]byte{2}, 18)
	if err := cs.write(id, 0, c0); err != nil {
		t.Fatal(err)
	}
	if cs.has(id, 0) {
		t.Errorf("has(0) before flush = true, want false")
	}
	if _, err := cs.read(id, 0, nil); !errors.Is(err, errNoChunk) {
		t.Errorf("read(0) before flush = %v, want errNoChunk", err)
	}
	if err := cs.drain(id); err != nil {
		t.Fatal(err)
	}
	if err := cs.flush(id); err != nil {
		t.Fatal(err)
	}
	if err := cs.write(id, 2, c2); err != nil { // written, never flushed: lost by the "crash"
		t.Fatal(err)
	}
	cs.close()
	st.Close()

	st, cs = open()
	defer st.Close()
	defer cs.close()
	if _, err := cs.prepare(id, l); err != nil {
		t.Fatal(err)
	}
	if got := cs.count(id); got != 1 {
		t.Errorf("count after reopen = %d, want 1 (only the flushed chunk)", got)
	}
	if got, err := cs.read(id, 0, nil); err != nil || !bytes.Equal(got, c0) {
		t.Errorf("read(0) after reopen = %x, %v, want the flushed chunk", got, err)
	}
	if cs.has(id, 2) {
		t.Errorf("has(2) after reopen = true, want false (never flushed)")
	}
}
