package e2e

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/node/nodeproc"
)

// TestDiscoveryAndGossip: five daemons, each told only one bootstrap peer (a chain), find each
// other through the DHT, and every node's presence announcement reaches every other node.
func TestDiscoveryAndGossip(t *testing.T) {
	c := newCluster(t)
	nodes := c.NewNodes("n", 5, "trainer")
	c.start(nodes[0])
	for i := 1; i < len(nodes); i++ {
		c.start(nodes[i], "--bootstrap", nodes[i-1].P2PAddr())
	}
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.Info().PeerID
	}
	others := func(i int) []string {
		return slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == ids[i] })
	}

	waitFor(t, 90*time.Second, func() error {
		for i, n := range nodes {
			rt, err := n.Client().NodeRouting(t.Context())
			if err != nil {
				return err
			}
			for _, want := range others(i) {
				if !slices.Contains(rt.Peers, want) {
					return fmt.Errorf("%s's routing table %v lacks %s", n.Name, rt.Peers, want)
				}
			}
		}
		return nil
	})
	waitFor(t, 60*time.Second, func() error {
		for i, n := range nodes {
			dir, err := n.Client().NodeDirectory(t.Context())
			if err != nil {
				return err
			}
			var heard []string
			for _, e := range dir {
				heard = append(heard, e.PeerID)
			}
			for _, want := range others(i) {
				if !slices.Contains(heard, want) {
					return fmt.Errorf("%s has no presence message from %s (heard %v)", n.Name, want, heard)
				}
			}
		}
		return nil
	})
	for _, n := range nodes {
		dir, _ := n.Client().NodeDirectory(t.Context())
		for _, e := range dir {
			if !slices.Equal(e.Roles, []string{"trainer"}) {
				t.Errorf("%s: presence of %s has roles %v, want [trainer]", n.Name, e.PeerID, e.Roles)
			}
		}
	}
}

// TestSecondDaemonOnLockedDatadir: a second `run` on a datadir in use exits with one clear sentence.
func TestSecondDaemonOnLockedDatadir(t *testing.T) {
	c := newCluster(t)
	n := c.NewNodes("a", 1)[0]
	c.start(n)
	args := append([]string{"run", "--datadir", n.Datadir}, nodeproc.LoopbackArgs...)
	out, err := exec.CommandContext(t.Context(), bin, args...).CombinedOutput()
	if err == nil {
		t.Fatalf("second run on a locked datadir exited 0; output:\n%s", out)
	}
	want := "is in use by another califusiond (pid "
	if !strings.Contains(string(out), want) || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Errorf("second run printed %q, want one line containing %q", out, want)
	}
	if _, err := n.Client().NodeInfo(t.Context()); err != nil {
		t.Errorf("first daemon stopped answering after the second tried its datadir: %v", err)
	}
}

// TestKillAndRestart: a daemon killed with -9 restarts on the same datadir with the same peer ID
// and the state it had stored: it rejoins through its remembered peers (no bootstrap flag) and
// still knows the other node's presence.
func TestKillAndRestart(t *testing.T) {
	c := newCluster(t)
	nodes := c.NewNodes("k", 2, "coordinator")
	a, b := nodes[0], nodes[1]
	c.start(a)
	c.start(b, "--bootstrap", a.P2PAddr())
	aID, bID := a.Info().PeerID, b.Info().PeerID
	waitFor(t, 30*time.Second, func() error {
		dir, err := b.Client().NodeDirectory(t.Context())
		if err != nil {
			return err
		}
		if len(dir) != 1 || dir[0].PeerID != aID {
			return fmt.Errorf("b's directory = %+v, want a's presence", dir)
		}
		return nil
	})

	if err := b.Kill(); err != nil {
		t.Fatal(err)
	}
	c.start(b) // no --bootstrap: only stored state can bring a back
	if got := b.Info().PeerID; got != bID {
		t.Errorf("peer ID after restart = %s, want %s", got, bID)
	}
	dir, err := b.Client().NodeDirectory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(dir) != 1 || dir[0].PeerID != aID {
		t.Errorf("directory right after restart = %+v, want a's stored presence", dir)
	}
	waitFor(t, 30*time.Second, func() error {
		peers, err := b.Client().NodePeers(t.Context())
		if err != nil {
			return err
		}
		for _, p := range peers {
			if p.PeerID == aID {
				return nil
			}
		}
		return fmt.Errorf("restarted node has not reconnected to %s (peers %+v)", aID, peers)
	})
}
