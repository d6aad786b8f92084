package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// writeRandom writes size random bytes to a new file and returns its path and SHA-256.
func writeRandom(t *testing.T, size int) (string, string) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "model.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return path, hex.EncodeToString(sum[:])
}

func waitJob(t *testing.T, n *harness.Node, job string, timeout time.Duration) adminrpc.JobStatus {
	t.Helper()
	var st adminrpc.JobStatus
	waitFor(t, timeout, func() error {
		var err error
		st, err = n.Client().JobStatus(t.Context(), job)
		if err != nil {
			return err
		}
		switch st.State {
		case "done":
			return nil
		case "failed":
			t.Fatalf("%s: job %s failed: %s", n.Name, job, st.Error)
		}
		return fmt.Errorf("%s: job %s is %s (%d/%d bytes)", n.Name, job, st.State, st.BytesDone, st.BytesTotal)
	})
	return st
}

// TestPublishFetchResume: a 64 MiB model reaches three nodes; one is killed with -9 half-way
// and resumes after restart; the publisher's export is byte-identical to the input.
func TestPublishFetchResume(t *testing.T) {
	c := newCluster(t)
	pub := c.NewNodes("pub", 1, "publisher", "coordinator")[0]
	fetchers := c.NewNodes("f", 3, "trainer")
	c.start(pub)
	for _, f := range fetchers {
		c.start(f, "--bootstrap", pub.P2PAddr())
	}
	path, sum := writeRandom(t, 64<<20)
	res, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "big", Price: "1000"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != 64<<20 || res.Chunks != 64 {
		t.Errorf("publish = %+v, want 64 MiB in 64 chunks", res)
	}
	out := filepath.Join(t.TempDir(), "export.bin")
	exp, err := pub.Client().ModelExport(t.Context(), res.ModelID, out)
	if err != nil {
		t.Fatal(err)
	}
	if exp.SHA256 != sum {
		t.Fatalf("publisher export sha256 = %s, want %s", exp.SHA256, sum)
	}

	// Every fetcher learns the model (gossip or catalog sync) and fetches it.
	for _, f := range fetchers {
		waitFor(t, 30*time.Second, func() error {
			_, err := f.Client().ModelGet(t.Context(), res.ModelID)
			return err
		})
	}
	victim := fetchers[0]
	job, err := victim.Client().ModelFetch(t.Context(), res.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	var atKill uint64
	waitFor(t, 60*time.Second, func() error {
		st, err := victim.Client().JobStatus(t.Context(), job.JobID)
		if err != nil {
			return err
		}
		if st.BytesDone < st.BytesTotal/4 {
			return fmt.Errorf("only %d/%d bytes", st.BytesDone, st.BytesTotal)
		}
		atKill = st.BytesDone
		return nil
	})
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	c.start(victim)
	st, err := victim.Client().JobStatus(t.Context(), job.JobID)
	if err != nil {
		t.Fatalf("job_status after restart: %v", err)
	}
	t.Logf("killed at %d bytes; after restart the job is %s at %d/%d", atKill, st.State, st.BytesDone, st.BytesTotal)
	// bytes_done counts durable chunks only, so everything reported before the kill survives it.
	if st.BytesDone < atKill {
		t.Errorf("after restart %d bytes are kept, want at least the %d reported durable before the kill", st.BytesDone, atKill)
	}
	t0 := time.Now()
	waitJob(t, victim, job.JobID, 60*time.Second)
	t.Logf("resumed fetch finished in %v", time.Since(t0))
	t0 = time.Now()

	for _, f := range fetchers[1:] {
		j, err := f.Client().ModelFetch(t.Context(), res.ModelID)
		if err != nil {
			t.Fatal(err)
		}
		waitJob(t, f, j.JobID, 60*time.Second)
	}
	t.Logf("other fetches finished in %v", time.Since(t0))
	for _, f := range fetchers {
		m, err := f.Client().ModelGet(t.Context(), res.ModelID)
		if err != nil {
			t.Fatal(err)
		}
		if m.LocalChunks != m.Chunks || m.Unlocked {
			t.Errorf("%s: model_get = %d/%d chunks, unlocked %v; want all chunks and still locked", f.Name, m.LocalChunks, m.Chunks, m.Unlocked)
		}
		_, err = f.Client().ModelExport(t.Context(), res.ModelID, filepath.Join(t.TempDir(), "x"))
		if adminrpc.CodeOf(err) != adminrpc.CodeNotUnlocked {
			t.Errorf("%s: export without the key = %v, want code %d", f.Name, err, adminrpc.CodeNotUnlocked)
		}
	}
	// A node that joins after the announcement fills its catalog from a peer's catalog.
	late := c.NewNodes("late", 1, "trainer")[0]
	c.start(late, "--bootstrap", fetchers[2].P2PAddr())
	waitFor(t, 30*time.Second, func() error {
		_, err := late.Client().ModelGet(t.Context(), res.ModelID)
		return err
	})
	// The blob files on a fetcher are ciphertext: the plaintext must not appear in them.
	plain, _ := os.ReadFile(path)
	blobs, _ := filepath.Glob(filepath.Join(fetchers[1].Datadir, "blobs", "*.bin"))
	for _, b := range blobs {
		data, _ := os.ReadFile(b)
		if bytes.Contains(data, plain[:4096]) {
			t.Errorf("blob %s contains plaintext", b)
		}
	}
}

func TestPublishBadInput(t *testing.T) {
	c := newCluster(t)
	n := c.NewNodes("p", 1, "publisher")[0]
	tr := c.NewNodes("t", 1, "trainer")[0]
	c.start(n)
	c.start(tr)
	dir := t.TempDir()
	tests := []struct {
		name string
		p    adminrpc.PublishParams
		code int
		msg  string
	}{
		{"missing file", adminrpc.PublishParams{Path: filepath.Join(dir, "nope"), Price: "1"}, adminrpc.CodeNotFound, "does not exist"},
		{"directory", adminrpc.PublishParams{Path: dir, Price: "1"}, adminrpc.CodeInvalidParams, "is a directory"},
		{"relative path", adminrpc.PublishParams{Path: "model.bin", Price: "1"}, adminrpc.CodeInvalidParams, "absolute"},
		{"bad price", adminrpc.PublishParams{Path: filepath.Join(dir, "nope"), Price: "1.5"}, adminrpc.CodeInvalidParams, "price"},
		{"chunk size", adminrpc.PublishParams{Path: filepath.Join(dir, "nope"), Price: "1", ChunkSize: 8 << 20}, adminrpc.CodeInvalidParams, "chunk_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n.Client().ModelPublish(t.Context(), tt.p)
			if adminrpc.CodeOf(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("model_publish(%+v) = %v, want code %d mentioning %q", tt.p, err, tt.code, tt.msg)
			}
		})
	}
	path, _ := writeRandom(t, 10)
	if _, err := tr.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Price: "1"}); adminrpc.CodeOf(err) != adminrpc.CodeRole {
		t.Errorf("model_publish on a trainer = %v, want code %d", err, adminrpc.CodeRole)
	}
	if _, err := n.Client().ModelGet(t.Context(), strings.Repeat("ab", 32)); adminrpc.CodeOf(err) != adminrpc.CodeNotFound {
		t.Errorf("model_get(unknown) = %v, want code %d", err, adminrpc.CodeNotFound)
	}
	if _, err := n.Client().ModelGet(t.Context(), "xyz"); adminrpc.CodeOf(err) != adminrpc.CodeInvalidParams {
		t.Errorf("model_get(bad id) = %v, want code %d", err, adminrpc.CodeInvalidParams)
	}
	// An empty file is a valid model.
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	res, err := n.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: empty, Price: "0"})
	if err != nil || res.Chunks != 0 {
		t.Fatalf("publish(empty) = %+v, %v", res, err)
	}
	exp, err := n.Client().ModelExport(t.Context(), res.ModelID, filepath.Join(dir, "empty.out"))
	if err != nil || exp.Size != 0 || exp.SHA256 != hex.EncodeToString(func() []byte { s := sha256.Sum256(nil); return s[:] }()) {
		t.Errorf("export(empty) = %+v, %v", exp, err)
	}
}
