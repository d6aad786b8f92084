package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// TestCoordinatorCrashBetweenVerifyAndGrant: the coordinator dies right after verifying a
// payment and before recording the grant. After a restart the payment grants exactly once: the
// payer unlocks with it, and nobody else can.
func TestCoordinatorCrashBetweenVerifyAndGrant(t *testing.T) {
	replica := startReplica(t)
	c := newCluster(t)
	coord := c.NewNodes("coord", 1, "publisher", "coordinator")[0]
	tr := c.NewNodes("tr", 2, "trainer")
	useReplica(t, replica.URL(), append([]*harness.Node{coord}, tr...)...)
	coord.Env = []string{"CALIFUSION_CRASH_AT=unlock-verified"}
	c.start(coord)
	for _, n := range tr {
		c.start(n, "--bootstrap", coord.P2PAddr())
		replica.Mint(principal.MustDecode(n.Info().ICPPrincipal), 1_000_000)
	}
	path, sum := writeRandom(t, 1<<20)
	res, err := coord.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "crash", Price: "100"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := tr[0], tr[1]
	for _, n := range tr {
		waitFor(t, 30*time.Second, func() error { _, err := n.Client().ModelGet(t.Context(), res.ModelID); return err })
		waitFor(t, 30*time.Second, func() error {
			dir, err := n.Client().NodeDirectory(t.Context())
			if err != nil || len(dir) == 0 {
				return errf("%s knows no coordinator yet (%v)", n.Name, err)
			}
			return nil
		})
	}
	pay, err := a.Client().ModelPay(t.Context(), res.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	block := pay.BlockIndex
	unlock := func(n *harness.Node) error {
		_, err := n.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: res.ModelID, Ledger: pay.Ledger, BlockIndex: &block})
		return err
	}
	// A valid payment, so only the crash can make this fail.
	if err := unlock(a); err == nil {
		t.Fatalf("unlock succeeded although the coordinator was set to crash before granting")
	}
	waitFor(t, 10*time.Second, func() error {
		if _, err := coord.Client().NodeInfo(t.Context()); err == nil {
			return errf("the coordinator is still answering; it should have crashed")
		}
		return nil
	})
	coord.Kill() // reap the crashed process
	coord.Env = nil
	c.start(coord)
	for _, n := range tr {
		if _, err := n.Client().NodeConnect(t.Context(), coord.P2PAddr()); err != nil {
			t.Fatal(err)
		}
	}
	if err := unlock(b); adminrpc.CodeOf(err) != adminrpc.CodePaymentInvalid {
		t.Errorf("B presenting A's block after the crash = %v, want code %d (the memo binds A)", err, adminrpc.CodePaymentInvalid)
	}
	if err := unlock(a); err != nil {
		t.Fatalf("A unlocking after the coordinator restarted = %v", err)
	}
	if err := unlock(b); adminrpc.CodeOf(err) != adminrpc.CodePaymentUsed {
		t.Errorf("B presenting A's block once A was granted = %v, want code %d", err, adminrpc.CodePaymentUsed)
	}
	job, err := a.Client().ModelFetch(t.Context(), res.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, a, job.JobID, 30*time.Second)
	if exp, err := a.Client().ModelExport(t.Context(), res.ModelID, filepath.Join(t.TempDir(), "a.bin")); err != nil || exp.SHA256 != sum {
		t.Errorf("A export = %+v, %v", exp, err)
	}
}
