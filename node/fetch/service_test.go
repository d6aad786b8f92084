package fetch

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/internal/fsutil"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/protocols/chunks"
	"github.com/califusion/califusion/store"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// waitJob polls job id until it leaves Running, or fails the test.
func waitJob(t *testing.T, f *fixture, id string) jobs.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := f.jobs.Status(id)
		if err == nil && st.State != jobs.Running && st.State != jobs.Queued {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %v (%v) after 10s", id, st.State, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jobCount counts the persisted jobs.
func jobCount(t *testing.T, f *fixture) int {
	t.Helper()
	n := 0
	if err := f.st.Scan(store.JobPrefix(), func(store.Key, func(any) error) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFetchUnknownModelIsNotFound(t *testing.T) {
	f := newFixture(t, nil)
	id := content.ModelID{0xab}
	_, err := f.svc.Fetch(t.Context(), id)
	var ae *apierr.Error
	want := fmt.Sprintf("no peer on the network knows model %s: asked 0 peers and the DHT", hex.EncodeToString(id[:]))
	if !errors.As(err, &ae) || ae.Code != apierr.NotFound || ae.Message != want {
		t.Fatalf("Fetch(unknown) = %v, want NotFound %q", err, want)
	}
	if n := jobCount(t, f); n != 0 {
		t.Errorf("jobs after Fetch(unknown) = %d, want 0", n)
	}
}

// A model the catalog does not have is resolved from the network (Catalog.Resolve) and fetched.
func TestFetchResolvesUnknownModel(t *testing.T) {
	f := newFixture(t, nil)
	rec, _ := f.publish(t, randomModel(2*content.MinChunkSize), "m", false)
	f.catalog.mu.Lock()
	delete(f.catalog.recs, rec.ID)
	f.catalog.remote = map[content.ModelID]*catalog.Record{rec.ID: rec}
	f.catalog.mu.Unlock()
	job, err := f.svc.Fetch(t.Context(), rec.ID)
	if err != nil || job == "" {
		t.Fatalf("Fetch(a model only the network knows) = %q, %v; want a job", job, err)
	}
	if _, err := f.catalog.Get(rec.ID); err != nil {
		t.Errorf("the resolved model is not in the catalog: %v", err)
	}
}

// TestFetchRequireChecksAnchor: under anchoring "require" a model whose anchor does not match
// its manifest is refused with Integrity and no job starts; a verified one is fetched.
func TestFetchRequireChecksAnchor(t *testing.T) {
	f := newFixture(t, nil)
	rec, _ := f.publish(t, randomModel(3*content.MinChunkSize), "m", false)
	f.anchors.required, f.anchors.state, f.anchors.err = true, calimero.StateInvalid, errors.New("anchored manifest differs from the one announced")
	_, err := f.svc.Fetch(t.Context(), rec.ID)
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != apierr.Integrity || ae.Message != "the model's Calimero anchor does not match its manifest: refusing to fetch it" || ae.Data != f.anchors.err.Error() {
		t.Fatalf("Fetch(invalid anchor) = %#v, want Integrity with the anchor's error as data", err)
	}
	if n := jobCount(t, f); n != 0 {
		t.Errorf("jobs after a refused Fetch = %d, want 0", n)
	}

	f.anchors.state, f.anchors.err = calimero.StateVerified, nil
	job, err := f.svc.Fetch(t.Context(), rec.ID)
	if err != nil {
		t.Fatalf("Fetch(verified anchor) = %v, want a job", err)
	}
	if st := waitJob(t, f, job); st.State != jobs.Done || st.Kind != JobKind || st.Subject != hex.EncodeToString(rec.ID[:]) {
		t.Errorf("job of a held model = %+v, want done, kind %q, subject the ModelID", st, JobKind)
	}
}

// TestFetchOffPolicyDoesNotCheck: with anchoring not required, Fetch reads no anchor.
func TestFetchOffPolicyDoesNotCheck(t *testing.T) {
	f := newFixture(t, nil)
	rec, _ := f.publish(t, randomModel(content.MinChunkSize), "m", false)
	f.anchors.state = calimero.StateInvalid
	if _, err := f.svc.Fetch(t.Context(), rec.ID); err != nil {
		t.Fatalf("Fetch(policy not require) = %v, want a job", err)
	}
	if f.anchors.checks != 0 {
		t.Errorf("anchor checks = %d, want 0", f.anchors.checks)
	}
}

func TestWaitFetched(t *testing.T) {
	f := newFixture(t, nil)
	rec, _ := f.publish(t, randomModel(2*content.MinChunkSize), "held", false)
	if err := f.svc.WaitFetched(t.Context(), rec); err != nil {
		t.Errorf("WaitFetched(held model) = %v, want nil", err)
	}

	// A model nobody provides: the job fails, and WaitFetched says so with the job's error.
	mn, err := mocknet.WithNPeers(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	g := newFixture(t, mn.Hosts()[0])
	g.svc.cfg.ProviderWait = 200 * time.Millisecond
	g.catalog.add(rec)
	err = g.svc.WaitFetched(t.Context(), rec)
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != apierr.Unavailable || !strings.Contains(fmt.Sprint(ae.Data), chunks.ErrNoProviders.Error()) {
		t.Errorf("WaitFetched(no providers) = %#v, want Unavailable carrying %q", err, chunks.ErrNoProviders)
	}
}

// TestStartResumesUnfinishedFetch: a fetch job left running by a stopped node resumes under its
// own ID at Start; jobs of other kinds are left alone.
func TestStartResumesUnfinishedFetch(t *testing.T) {
	f := newFixture(t, nil)
	rec, _ := f.publish(t, randomModel(content.MinChunkSize), "m", false)
	now := time.Now().UTC()
	for _, j := range []jobs.Status{
		{ID: "0123456789abcdef", Kind: JobKind, Subject: hex.EncodeToString(rec.ID[:]), State: jobs.Running, Created: now, Updated: now},
		{ID: "fedcba9876543210", Kind: "other", Subject: hex.EncodeToString(rec.ID[:]), State: jobs.Running, Created: now, Updated: now},
	} {
		if err := f.st.Put(store.JobKey(j.ID), &j); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, f, "0123456789abcdef"); st.State != jobs.Done {
		t.Errorf("resumed fetch = %+v, want done", st)
	}
	if st, _ := f.jobs.Status("fedcba9876543210"); st.State != jobs.Running {
		t.Errorf("job of another kind = %+v, want left running (not resumed)", st)
	}
	if err := f.svc.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := f.svc.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func TestDecryptAndPlaintext(t *testing.T) {
	f := newFixture(t, nil)
	plain := randomModel(3*content.MinChunkSize + 17)
	rec, _ := f.publish(t, plain, "m", true)
	if got := f.svc.LocalChunks(rec); got != rec.Manifest.Chunks {
		t.Errorf("LocalChunks = %d, want %d", got, rec.Manifest.Chunks)
	}
	if !f.svc.Complete(rec) {
		t.Errorf("Complete(published model) = false, want true")
	}
	got, err := f.svc.Plaintext(rec.ID)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Plaintext = %d bytes, %v; want the published %d bytes", len(got), err, len(plain))
	}
	if _, err := f.svc.Plaintext(content.ModelID{1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Plaintext(unknown) = %v, want store.ErrNotFound", err)
	}
}

// TestExportRefusals: an export refuses an existing file without overwrite, a path inside the
// datadir, a model whose key is not here and one whose chunks are not all here; none of them
// leaves anything behind.
func TestExportRefusals(t *testing.T) {
	f := newFixture(t, nil)
	plain := randomModel(2*content.MinChunkSize + 5)
	unlocked, _ := f.publish(t, plain, "unlocked", true)
	locked, _ := f.publish(t, randomModel(content.MinChunkSize), "locked", false)
	// In the catalog, key held, no chunk here.
	absent, key := (&fixture{}).publishElsewhere(t, plain)
	f.catalog.add(absent)
	f.keys.put(absent.ID, key)

	out := t.TempDir()
	existing := filepath.Join(out, "existing.bin")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		id   content.ModelID
		path string
		want error
	}{
		{"exists", unlocked.ID, existing, ErrExists},
		{"inside the datadir", unlocked.ID, filepath.Join(f.datadir, "model.bin"), fsutil.ErrInside},
		{"inside the store", unlocked.ID, filepath.Join(f.datadir, "store", "x"), fsutil.ErrInside},
		{"not unlocked", locked.ID, filepath.Join(out, "locked.bin"), ErrNotUnlocked},
		{"incomplete", absent.ID, filepath.Join(out, "absent.bin"), ErrIncomplete},
		{"unknown", content.ModelID{9}, filepath.Join(out, "unknown.bin"), store.ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := f.svc.Export(c.id, c.path, false)
			if !errors.Is(err, c.want) {
				t.Errorf("Export(%s) = %v, want %v", c.path, err, c.want)
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("refused export changed the existing file to %q", b)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 {
		t.Errorf("files in the export folder after refusals = %d, want only the existing one", len(entries))
	}

	size, sum, err := f.svc.Export(unlocked.ID, existing, true)
	if err != nil || size != uint64(len(plain)) || sum != sha256.Sum256(plain) {
		t.Fatalf("Export(overwrite) = %d, %x, %v; want %d bytes, %x", size, sum, err, len(plain), sha256.Sum256(plain))
	}
	got, _ := os.ReadFile(existing)
	fi, _ := os.Stat(existing)
	if !bytes.Equal(got, plain) || fi.Mode().Perm() != 0o600 {
		t.Errorf("exported file = %d bytes mode %o, want the plaintext at mode 600", len(got), fi.Mode().Perm())
	}
	fresh := filepath.Join(out, "fresh.bin")
	if _, _, err := f.svc.Export(unlocked.ID, fresh, false); err != nil {
		t.Errorf("Export(new path) = %v, want nil", err)
	}
}

// publishElsewhere packages plain on a throwaway node and returns its record and key: a model
// this node knows of but holds nothing of.
func (*fixture) publishElsewhere(t *testing.T, plain []byte) (*catalog.Record, content.Key) {
	t.Helper()
	return newFixture(t, nil).publish(t, plain, "elsewhere", false)
}

// TestServeChunks: the chunks.Source side serves what is held and nothing else, and opens no
// blob for a chunk it does not hold.
func TestServeChunks(t *testing.T) {
	f := newFixture(t, nil)
	rec, _ := f.publish(t, randomModel(2*content.MinChunkSize), "m", false)
	if _, err := f.svc.Leaves(content.ModelID{1}); !errors.Is(err, chunks.ErrUnknownModel) {
		t.Errorf("Leaves(unknown) = %v, want ErrUnknownModel", err)
	}
	raw, err := f.svc.Leaves(rec.ID)
	if l, lerr := content.LeavesFromBytes(raw); err != nil || lerr != nil || content.CheckLeaves(l, rec.Manifest.Chunks, rec.Manifest.Root) != nil {
		t.Errorf("Leaves(held) = %d bytes, %v; want the leaf list matching the root", len(raw), err)
	}
	if _, err := f.svc.ReadChunk(content.ModelID{1}, 0, nil); !errors.Is(err, chunks.ErrUnknownModel) {
		t.Errorf("ReadChunk(unknown model) = %v, want ErrUnknownModel", err)
	}
	if _, err := f.svc.ReadChunk(rec.ID, 5, nil); !errors.Is(err, errNoChunk) {
		t.Errorf("ReadChunk(chunk beyond the model) = %v, want errNoChunk", err)
	}
	if _, ok := f.chunks.get(rec.ID); ok {
		t.Errorf("a refused ReadChunk opened the model's blob")
	}
	ct, err := f.svc.ReadChunk(rec.ID, 1, nil)
	if n, _ := layoutOf(rec.Manifest).CipherLen(1); err != nil || len(ct) != n {
		t.Errorf("ReadChunk(held chunk) = %d bytes, %v; want %d", len(ct), err, n)
	}
}
