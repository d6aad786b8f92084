package e2e

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/adminrpc"
)

// privateTree reports every file or folder under root that its group or others may access.
func privateTree(t *testing.T, root string) []string {
	t.Helper()
	var loose []string
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // badger removes files while it runs
			}
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		if fi.Mode()&fs.ModeSymlink == 0 && fi.Mode().Perm()&0o077 != 0 {
			loose = append(loose, path+" "+fi.Mode().Perm().String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return loose
}

// TestExportCannotClobber (issue 12, item 10): model_export refuses the node's own rpc.token, any
// path in the datadir (also through a symlink), and an existing file unless asked to overwrite;
// what it writes is 0600.
func TestExportCannotClobber(t *testing.T) {
	c := newCluster(t)
	pub := c.NewNodes("pub", 1, "publisher", "coordinator")[0]
	c.start(pub)
	path, sum := writeRandom(t, 3<<20)
	res, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "m", Price: "1"})
	if err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(pub.Datadir, adminrpc.TokenFile)
	tokenBefore, _ := os.ReadFile(token)
	elsewhere := t.TempDir()
	link := filepath.Join(elsewhere, "datadir-link")
	if err := os.Symlink(pub.Datadir, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{token, filepath.Join(pub.Datadir, "model.bin"), filepath.Join(pub.Datadir, "store", "x"), filepath.Join(link, adminrpc.TokenFile)} {
		var r adminrpc.ExportResult
		err := pub.Client().Call(t.Context(), "model_export", adminrpc.ExportParams{ModelID: res.ModelID, Path: p, Overwrite: true}, &r)
		if adminrpc.CodeOf(err) != adminrpc.CodeInvalidParams || !strings.Contains(err.Error(), "datadir") {
			t.Errorf("export to %s (overwrite) = %v, want code %d naming the datadir", p, err, adminrpc.CodeInvalidParams)
		}
	}
	if after, _ := os.ReadFile(token); string(after) != string(tokenBefore) {
		t.Fatal("rpc.token changed after the refused exports")
	}
	if _, err := os.Stat(filepath.Join(pub.Datadir, "model.bin")); err == nil {
		t.Error("a refused export left model.bin in the datadir")
	}

	existing := filepath.Join(elsewhere, "existing.bin")
	writeFile(t, existing, "keep me")
	if _, err := pub.Client().ModelExport(t.Context(), res.ModelID, existing); adminrpc.CodeOf(err) != adminrpc.CodeConflict {
		t.Errorf("export over an existing file = %v, want code %d", err, adminrpc.CodeConflict)
	}
	if got, _ := os.ReadFile(existing); string(got) != "keep me" {
		t.Errorf("the existing file now holds %d bytes, want it untouched", len(got))
	}
	// The CLI asks for the overwrite with --force.
	cli(t, true, "--datadir", pub.Datadir, "model", "export", res.ModelID, existing)
	out := cli(t, false, "--datadir", pub.Datadir, "model", "export", "--force", res.ModelID, existing)
	if !strings.Contains(out, sum) {
		t.Errorf("model export --force printed %q, want the sha256 %s", out, sum)
	}
	// model buy exports too: it refuses the existing file (before fetching or paying) and
	// replaces it with --force.
	writeFile(t, existing, "keep me")
	if out := cli(t, true, "--datadir", pub.Datadir, "model", "buy", res.ModelID, existing); !strings.Contains(out, "--force") {
		t.Errorf("model buy over an existing file printed %q, want it to name --force", out)
	}
	if got, _ := os.ReadFile(existing); string(got) != "keep me" {
		t.Errorf("after the refused buy the existing file holds %d bytes, want it untouched", len(got))
	}
	if out := cli(t, false, "--datadir", pub.Datadir, "model", "buy", "--force", res.ModelID, existing); !strings.Contains(out, sum) {
		t.Errorf("model buy --force printed %q, want the sha256 %s", out, sum)
	}
	fresh := filepath.Join(elsewhere, "fresh.bin")
	exp, err := pub.Client().ModelExport(t.Context(), res.ModelID, fresh)
	if err != nil || exp.SHA256 != sum {
		t.Fatalf("export to a new file = %+v, %v; want sha256 %s", exp, err, sum)
	}
	for _, p := range []string{existing, fresh} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("mode of exported %s = %v (%v), want 0600", p, fi.Mode().Perm(), err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(elsewhere, ".*part*")); len(left) > 0 {
		t.Errorf("temporary files left beside the exports: %v", left)
	}
}

// TestDatadirIsPrivate (issue 12, item 10): after a node has run (store, blobs, keys), nothing in
// its datadir is readable by group or others; the badger files used to be 0644.
func TestDatadirIsPrivate(t *testing.T) {
	c := newCluster(t)
	pub := c.NewNodes("pub", 1, "publisher", "coordinator")[0]
	c.start(pub)
	path, _ := writeRandom(t, 3<<20)
	if _, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "m", Price: "1"}); err != nil {
		t.Fatal(err)
	}
	if loose := privateTree(t, pub.Datadir); len(loose) > 0 {
		t.Errorf("while running, the datadir holds entries others may read:\n%s", strings.Join(loose, "\n"))
	}
	if err := pub.Stop(); err != nil {
		t.Fatal(err)
	}
	if loose := privateTree(t, pub.Datadir); len(loose) > 0 {
		t.Errorf("after a clean stop, the datadir holds entries others may read:\n%s", strings.Join(loose, "\n"))
	}
}

// TestRemoteRPCRefused (issue 12, item 10): a non-loopback rpc address stops the daemon at start
// with one sentence, unless --unsafe-rpc is given, and then it starts and warns.
func TestRemoteRPCRefused(t *testing.T) {
	c := newCluster(t)
	n := c.NewNodes("n", 1, "trainer")[0]
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	raw, err := exec.CommandContext(ctx, bin, "--datadir", n.Datadir, "run", "--rpc-addr", "0.0.0.0:0", "--listen", "/ip4/127.0.0.1/tcp/0").CombinedOutput()
	out := string(raw)
	if ctx.Err() != nil {
		t.Fatalf("run --rpc-addr 0.0.0.0:0 did not exit within 30s: the daemon started with its admin API open to the network")
	}
	if err == nil || !strings.Contains(out, "rpc.addr") || !strings.Contains(out, "--unsafe-rpc") {
		t.Errorf("run --rpc-addr 0.0.0.0:0 said %q, want a refusal naming rpc.addr and --unsafe-rpc", out)
	}
	c.start(n, "--rpc-addr", "0.0.0.0:0", "--unsafe-rpc")
	if !strings.Contains(n.Logs(), "UNSAFE") {
		t.Errorf("a daemon with a non-loopback RPC logged no warning:\n%s", n.Logs())
	}
}
