package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

// bin is the califusiond binary built once for all tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "califusion-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	bin, err = harness.Build(ctx, "..", dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cluster wraps a harness for one test: nodes stop at cleanup, and their logs are printed when
// the test failed.
type cluster struct {
	t *testing.T
	*harness.Harness
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	h := harness.New(bin, t.TempDir())
	c := &cluster{t: t, Harness: h}
	t.Cleanup(func() {
		if err := h.StopAll(); err != nil {
			t.Errorf("stop nodes: %v", err)
		}
		if t.Failed() {
			for _, n := range h.Nodes() {
				t.Logf("==== log of %s (%s) ====\n%s", n.Name, filepath.Base(n.Datadir), n.Logs())
			}
		}
	})
	return c
}

// NewNodes initialises count nodes named prefix0..prefixN-1 with roles.
func (c *cluster) NewNodes(prefix string, count int, roles ...string) []*harness.Node {
	c.t.Helper()
	nodes := make([]*harness.Node, count)
	for i := range nodes {
		n, err := c.Init(c.t.Context(), fmt.Sprintf("%s%d", prefix, i), roles)
		if err != nil {
			c.t.Fatal(err)
		}
		nodes[i] = n
	}
	return nodes
}

// start starts n with extra args, failing the test if it does not become ready.
func (c *cluster) start(n *harness.Node, args ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), time.Minute)
	defer cancel()
	if err := n.Start(ctx, args...); err != nil {
		c.t.Fatal(err)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	if err := harness.WaitFor(ctx, cond); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func errf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// startReplica runs an ICP replica emulator for the test.
func startReplica(t *testing.T) *icptest.Sim {
	t.Helper()
	replica, err := icptest.New(icptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Close() })
	return replica
}

// useReplica points the nodes' ICP configuration at url (a local replica: fetch_root_key on).
func useReplica(t *testing.T, url string, nodes ...*harness.Node) {
	t.Helper()
	for _, n := range nodes {
		if err := n.EditConfig(func(cfg *config.Config) {
			cfg.ICP = config.ICP{ReplicaURL: url, LedgerCanisterID: icptest.LedgerID, FetchRootKey: true}
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// waitHeard waits until every node in nodes lists peer in its directory: it has received and
// verified peer's signed presence (a trainer must know its coordinator before it unlocks).
func waitHeard(t *testing.T, peer *harness.Node, nodes ...*harness.Node) {
	t.Helper()
	id := peer.Info().PeerID
	waitFor(t, 30*time.Second, func() error {
		for _, n := range nodes {
			dir, err := n.Client().NodeDirectory(t.Context())
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(dir, func(e adminrpc.DirectoryEntry) bool { return e.PeerID == id }) {
				return errf("%s has not heard %s yet", n.Name, peer.Name)
			}
		}
		return nil
	})
}
