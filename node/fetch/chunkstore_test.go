package fetch

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/store"
	"github.com/califusion/califusion/store/blob"
)

// openChunkStore opens a store in db and a blob folder in blobs, and a chunk store over them;
// the caller closes the chunk store, then the store.
func openChunkStore(t *testing.T, db, blobs string) (*store.Store, *blob.Dir, *ChunkStore) {
	t.Helper()
	st, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bd, err := blob.OpenDir(blobs)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return st, bd, NewChunkStore(st, bd)
}

func TestChunkStoreFlushMarksPresence(t *testing.T) {
	dir := t.TempDir()
	open := func() (*store.Store, *ChunkStore) {
		st, _, cs := openChunkStore(t, dir+"/db", dir+"/blobs")
		return st, cs
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
	cs.Close()
	st.Close()

	st, cs = open()
	defer st.Close()
	defer cs.Close()
	if _, err := cs.prepare(id, l); err != nil {
		t.Fatal(err)
	}
	if got := cs.Count(id); got != 1 {
		t.Errorf("count after reopen = %d, want 1 (only the flushed chunk)", got)
	}
	if got, err := cs.read(id, 0, nil); err != nil || !bytes.Equal(got, c0) {
		t.Errorf("read(0) after reopen = %x, %v, want the flushed chunk", got, err)
	}
	if cs.has(id, 2) {
		t.Errorf("has(2) after reopen = true, want false (never flushed)")
	}
}

// TestChunkStoreBitmapGrowsWithHeldChunks checks that preparing a model allocates no bitmap
// sized by the chunk count its manifest claims (the catalog prepares every model it lists), and
// that the bitmap, grown as chunks become present, survives a reopen.
func TestChunkStoreBitmapGrowsWithHeldChunks(t *testing.T) {
	dir := t.TempDir()
	open := func() (*store.Store, *ChunkStore) {
		st, _, cs := openChunkStore(t, dir+"/db", dir+"/blobs")
		return st, cs
	}
	id := [32]byte{9}
	l := blob.Layout{Size: content.MaxChunks * content.MinChunkSize, ChunkSize: content.MinChunkSize, Chunks: content.MaxChunks}
	st, cs := open()
	mc, err := cs.prepare(id, l)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(mc.have); n != 0 {
		t.Errorf("bitmap after prepare of %d chunks = %d bytes, want 0 (nothing held)", l.Chunks, n)
	}
	ct := bytes.Repeat([]byte{3}, content.MinChunkSize+blob.Overhead)
	for _, i := range []uint64{0, 100} {
		if err := cs.write(id, i, ct); err != nil {
			t.Fatal(err)
		}
	}
	if err := cs.drain(id); err != nil {
		t.Fatal(err)
	}
	if err := cs.flush(id); err != nil {
		t.Fatal(err)
	}
	if n := len(mc.have); n > 100/8+1 {
		t.Errorf("bitmap holding chunks 0 and 100 = %d bytes, want at most %d", n, 100/8+1)
	}
	cs.Close()
	st.Close()

	st, cs = open()
	defer st.Close()
	defer cs.Close()
	if _, err := cs.prepare(id, l); err != nil {
		t.Fatal(err)
	}
	if got := cs.Count(id); got != 2 {
		t.Errorf("count after reopen = %d, want 2", got)
	}
	for _, i := range []uint64{0, 100} {
		if !cs.has(id, i) {
			t.Errorf("has(%d) after reopen = false, want true", i)
		}
	}
	if cs.has(id, 1) {
		t.Errorf("has(1) after reopen = true, want false")
	}
}

// TestChunkStoreHeldBytes checks heldBytes (constant time) against the sum over held chunks,
// with and without the shorter last chunk.
func TestChunkStoreHeldBytes(t *testing.T) {
	st, _, cs := openChunkStore(t, t.TempDir(), t.TempDir())
	defer st.Close()
	defer cs.Close()
	id := [32]byte{5}
	l := blob.Layout{Size: 10, ChunkSize: 4, Chunks: 3} // ciphertext chunks of 20, 20 and 18 bytes
	if _, err := cs.prepare(id, l); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		chunk uint64
		want  uint64
	}{{2, 18}, {0, 38}, {1, 58}}
	if got := cs.heldBytes(id); got != 0 {
		t.Errorf("heldBytes(none) = %d, want 0", got)
	}
	for _, s := range steps {
		n, _ := l.CipherLen(s.chunk)
		if err := cs.write(id, s.chunk, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		if err := cs.drain(id); err != nil {
			t.Fatal(err)
		}
		if err := cs.flush(id); err != nil {
			t.Fatal(err)
		}
		if got := cs.heldBytes(id); got != s.want {
			t.Errorf("heldBytes after chunk %d = %d, want %d", s.chunk, got, s.want)
		}
	}
}

// TestLargestLeafListFitsTheStore: the leaf list of a model with MaxChunks chunks is one store
// value (publish and fetch keep it under store.LeavesKey), and badger refuses values beyond its
// value-log file size.
func TestLargestLeafListFitsTheStore(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Put(store.LeavesKey([32]byte{1}), make([]byte, content.MaxChunks*32)); err != nil {
		t.Errorf("Put(leaf list of %d chunks) = %v, want nil", content.MaxChunks, err)
	}
}

// TestChunkStoreHeldOpensNoBlob: counting a model's held chunks (what the catalog listing and
// the startup scan do for every model) reads the recorded bitmap and opens, or creates, no blob.
func TestChunkStoreHeldOpensNoBlob(t *testing.T) {
	blobs := t.TempDir()
	st, _, cs := openChunkStore(t, t.TempDir(), blobs)
	defer st.Close()
	defer cs.Close()
	held, none := [32]byte{1}, [32]byte{2}
	have := store.NewBitmap(10)
	have.Set(0)
	have.Set(9)
	if err := st.Put(store.HaveKey(held), []byte(have)); err != nil {
		t.Fatal(err)
	}
	if got := cs.Held(held, 10); got != 2 {
		t.Errorf("Held(model with 2 chunks recorded) = %d, want 2", got)
	}
	if got := cs.Held(none, 10); got != 0 {
		t.Errorf("Held(model with nothing recorded) = %d, want 0", got)
	}
	if got := cs.Held(held, 5); got != 0 {
		t.Errorf("Held(2-byte bitmap, 5-chunk layout) = %d, want 0 (a record that does not fit is ignored)", got)
	}
	odd := [32]byte{3}
	stray := store.NewBitmap(8)
	stray.Set(1)
	stray.Set(7)
	if err := st.Put(store.HaveKey(odd), []byte(stray)); err != nil {
		t.Fatal(err)
	}
	if got := cs.Held(odd, 5); got != 1 {
		t.Errorf("Held(chunks 1 and 7 recorded, 5-chunk layout) = %d, want 1 (bits beyond the layout ignored)", got)
	}
	if files, _ := os.ReadDir(blobs); len(files) != 0 || len(cs.open) != 0 {
		t.Errorf("after Held: %d blob files, %d open models, want none", len(files), len(cs.open))
	}
}

// TestChunkStorePutComplete: a publisher records its packaged model as wholly held inside its own
// transaction; the chunk store then counts every chunk and serves the leaf list.
func TestChunkStorePutComplete(t *testing.T) {
	st, bd, cs := openChunkStore(t, t.TempDir(), t.TempDir())
	defer st.Close()
	defer cs.Close()
	if cs.Blobs() != bd {
		t.Errorf("Blobs() = %p, want the folder given to NewChunkStore (%p)", cs.Blobs(), bd)
	}
	id := content.ModelID{4}
	leaves := [][32]byte{{1}, {2}, {3}}
	if err := st.Update(func(tx *store.Tx) error { return cs.PutComplete(tx, id, leaves, 3) }); err != nil {
		t.Fatal(err)
	}
	if got := cs.Held(id, 3); got != 3 {
		t.Errorf("Held after PutComplete = %d, want 3", got)
	}
	var raw []byte
	if err := st.Get(store.LeavesKey(id), &raw); err != nil || !bytes.Equal(raw, content.LeavesToBytes(leaves)) {
		t.Errorf("leaf list after PutComplete = %x, %v, want %x", raw, err, content.LeavesToBytes(leaves))
	}
}

// TestChunkStoreRemoveWaitsForFlush: Remove waits for a flush that has synced the blob but not
// yet recorded its chunks (else that flush would write the have-bitmap back after Remove deleted
// it, and a later fetch would find chunks marked present in a fresh, empty blob), and a flush
// that had the model in hand when Remove ran records nothing.
func TestChunkStoreRemoveWaitsForFlush(t *testing.T) {
	dir := t.TempDir()
	st, _, cs := openChunkStore(t, dir+"/db", dir+"/blobs")
	defer st.Close()
	defer cs.Close()
	id := [32]byte{9}
	m, err := cs.prepare(id, blob.Layout{Size: 10, ChunkSize: 4, Chunks: 3})
	if err != nil {
		t.Fatal(err)
	}
	m.flushing.Lock() // a flush between its sync and its store write
	removed := make(chan error, 1)
	go func() { removed <- cs.Remove(id) }()
	select {
	case err := <-removed:
		t.Fatalf("Remove = %v while a flush was recording, want it to wait", err)
	case <-time.After(50 * time.Millisecond):
	}
	m.flushing.Unlock()
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if err := cs.flushModel(id, m); err == nil {
		t.Errorf("flush of a removed model = nil, want an error")
	}
	var b []byte
	if err := st.Get(store.HaveKey(id), &b); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("have-bitmap after Remove: %v (%x), want not found", err, b)
	}
}
