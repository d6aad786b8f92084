package fetch

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/protocols/chunks"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// TestChunkStoreRemove: Remove of a fetched model that is open (being served) closes its blob
// and deletes the blob file, the have-bitmap and the leaf list; nothing of it is served any
// more, and a later fetch starts over from nothing and ends with the same plaintext. The fetch
// service tells its OnFetched hook of each completed fetch.
func TestChunkStoreRemove(t *testing.T) {
	mn, err := mocknet.FullMeshConnected(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	pub, tr := newFixture(t, mn.Hosts()[0]), newFixture(t, mn.Hosts()[1])
	for _, f := range []*fixture{pub, tr} {
		if err := f.svc.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var fetched []content.ModelID
	tr.svc.OnFetched(func(id content.ModelID) { mu.Lock(); fetched = append(fetched, id); mu.Unlock() })
	tr.catalog.providers = []peer.ID{mn.Hosts()[0].ID()}
	plain := randomModel(9*content.MinChunkSize + 5)
	rec, key := pub.publish(t, plain, "m", false)
	tr.catalog.add(rec)
	tr.keys.put(rec.ID, key)
	total := layoutOf(rec.Manifest).CipherSize()

	fetch := func() jobs.Status {
		t.Helper()
		job, err := tr.svc.Fetch(t.Context(), rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		return waitJob(t, tr, job)
	}
	if st := fetch(); st.State != jobs.Done {
		t.Fatalf("first fetch = %+v, want done", st)
	}
	if _, err := tr.svc.ReadChunk(rec.ID, 0, nil); err != nil { // the blob is open, as when serving
		t.Fatal(err)
	}
	if got := tr.chunks.DiskBytes(rec.ID); got == 0 {
		t.Fatalf("DiskBytes of the fetched model = 0, want its blob's size")
	}

	if err := tr.chunks.Remove(rec.ID); err != nil {
		t.Fatalf("Remove = %v", err)
	}
	blobs, _ := filepath.Glob(filepath.Join(tr.datadir, "blobs", "*"))
	if len(blobs) != 0 {
		t.Errorf("blob files after Remove = %v, want none", blobs)
	}
	if got := tr.chunks.DiskBytes(rec.ID); got != 0 {
		t.Errorf("DiskBytes after Remove = %d, want 0", got)
	}
	if n, err := tr.chunks.Usage(); err != nil || n != 0 {
		t.Errorf("Usage after Remove = %d, %v; want 0", n, err)
	}
	if got := tr.chunks.Held(rec.ID, rec.Manifest.Chunks); got != 0 {
		t.Errorf("Held after Remove = %d, want 0", got)
	}
	var b []byte
	if err := tr.st.Get(store.HaveKey(rec.ID), &b); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("have-bitmap after Remove: %v, want not found", err)
	}
	if _, err := tr.svc.Leaves(rec.ID); !errors.Is(err, chunks.ErrUnknownModel) {
		t.Errorf("Leaves after Remove = %v, want ErrUnknownModel", err)
	}
	if _, err := tr.svc.ReadChunk(rec.ID, 0, nil); !errors.Is(err, errNoChunk) {
		t.Errorf("ReadChunk after Remove = %v, want errNoChunk", err)
	}
	if _, ok := tr.chunks.get(rec.ID); ok {
		t.Errorf("a refused ReadChunk after Remove reopened the model's blob")
	}
	if err := tr.chunks.Remove(rec.ID); err != nil {
		t.Errorf("a second Remove = %v, want nil (nothing left to drop)", err)
	}

	// A later fetch starts over cleanly.
	if st := fetch(); st.State != jobs.Done || st.BytesDone != total {
		t.Fatalf("fetch after Remove = %+v, want done with all %d bytes", st, total)
	}
	if back, err := tr.svc.Plaintext(rec.ID); err != nil || !bytes.Equal(back, plain) {
		t.Fatalf("Plaintext after re-fetch = %d bytes, %v; want the published plaintext", len(back), err)
	}
	if _, err := os.Stat(filepath.Join(tr.datadir, "blobs")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(fetched) != 2 || fetched[0] != rec.ID || fetched[1] != rec.ID {
		t.Errorf("OnFetched calls = %x, want the model twice (one per completed fetch)", fetched)
	}
}
