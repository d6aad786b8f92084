package e2e

import (
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp/icptest"
	"github.com/califusion/califusion/protocols/keys"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestPayUnlockExport: publisher + coordinator + trainers on the ICP emulator. Each paying
// trainer exports the exact bytes; a replayed, mis-bound or short payment is refused; a trainer
// that did not pay cannot export.
func TestPayUnlockExport(t *testing.T) {
	replica := startReplica(t)
	c := newCluster(t)
	pub := c.NewNodes("pub", 1, "publisher")[0]
	coord := c.NewNodes("coord", 1, "coordinator")[0]
	tr := c.NewNodes("tr", 3, "trainer")
	all := append([]*harness.Node{pub, coord}, tr...)
	useReplica(t, replica.URL(), all...)
	c.start(coord)
	for _, n := range append([]*harness.Node{pub}, tr...) {
		c.start(n, "--bootstrap", coord.P2PAddr())
		replica.Mint(principal.MustDecode(n.Info().ICPPrincipal), 10_000_000)
	}
	// Every node must know the coordinator (presence) before the publisher escrows.
	waitHeard(t, coord, append([]*harness.Node{pub}, tr...)...)
	path, sum := writeRandom(t, 3<<20)
	res, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "paid", Price: "1000", Coordinators: []string{coord.Info().PeerID}})
	if err != nil {
		t.Fatal(err)
	}
	a, b, unpaid := tr[0], tr[1], tr[2]
	for _, n := range tr {
		waitFor(t, 30*time.Second, func() error { _, err := n.Client().ModelGet(t.Context(), res.ModelID); return err })
		job, err := n.Client().ModelFetch(t.Context(), res.ModelID)
		if err != nil {
			t.Fatal(err)
		}
		waitJob(t, n, job.JobID, 30*time.Second)
	}

	// A pays, unlocks with that block, and exports the exact bytes.
	ledger := icptest.LedgerID
	unlockWith := func(n *harness.Node, block uint64) error {
		_, err := n.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: res.ModelID, Ledger: ledger, BlockIndex: &block})
		return err
	}
	aPay, err := a.Client().ModelPay(t.Context(), res.ModelID)
	if err != nil || aPay.Amount != "1000" || aPay.Ledger != ledger {
		t.Fatalf("A model_pay = %+v, %v", aPay, err)
	}
	if err := unlockWith(a, aPay.BlockIndex); err != nil {
		t.Fatalf("A model_unlock = %v", err)
	}
	exp, err := a.Client().ModelExport(t.Context(), res.ModelID, filepath.Join(t.TempDir(), "a.bin"))
	if err != nil || exp.SHA256 != sum {
		t.Fatalf("A export = %+v, %v; want sha256 %s", exp, err, sum)
	}
	if _, err := a.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: res.ModelID}); err != nil {
		t.Errorf("A second model_unlock = %v, want success (idempotent)", err)
	}
	// A presents the same block for another model: consumed for another lineage.
	pathY, _ := writeRandom(t, 1<<20)
	resY, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: pathY, Name: "other", Price: "1000", Coordinators: []string{coord.Info().PeerID}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error { _, err := a.Client().ModelGet(t.Context(), resY.ModelID); return err })
	blk := aPay.BlockIndex
	if _, err := a.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: resY.ModelID, Ledger: ledger, BlockIndex: &blk}); adminrpc.CodeOf(err) != adminrpc.CodePaymentUsed {
		t.Errorf("A presenting its block for another model = %v, want code %d", err, adminrpc.CodePaymentUsed)
	}
	// B replays the block A consumed.
	if err := unlockWith(b, aPay.BlockIndex); adminrpc.CodeOf(err) != adminrpc.CodePaymentUsed {
		t.Errorf("B replaying A's block = %v, want code %d", err, adminrpc.CodePaymentUsed)
	}

	// B's own transfers: wrong memo, then the right memo but below the price.
	payee := pub.Info().ICPPrincipal
	var lineage [32]byte
	raw, _ := hex.DecodeString(res.ModelID)
	copy(lineage[:], raw)
	bID, _ := peer.Decode(b.Info().PeerID)
	rightMemo := hex.EncodeToString(keys.Memo(lineage, bID))
	wrong, err := b.Client().LedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: payee, Amount: "1000", Memo: "00"})
	if err != nil {
		t.Fatal(err)
	}
	if err := unlockWith(b, wrong.BlockIndex); adminrpc.CodeOf(err) != adminrpc.CodePaymentInvalid {
		t.Errorf("B unlocking with a wrong-memo payment = %v, want code %d", err, adminrpc.CodePaymentInvalid)
	}
	short, err := b.Client().LedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: payee, Amount: "999", Memo: rightMemo})
	if err != nil {
		t.Fatal(err)
	}
	if err := unlockWith(b, short.BlockIndex); adminrpc.CodeOf(err) != adminrpc.CodePaymentInsufficient {
		t.Errorf("B unlocking with a short payment = %v, want code %d", err, adminrpc.CodePaymentInsufficient)
	}
	if err := unlockWith(b, 10_000); adminrpc.CodeOf(err) != adminrpc.CodePaymentInvalid {
		t.Errorf("B unlocking with a block not on the ledger = %v, want code %d", err, adminrpc.CodePaymentInvalid)
	}
	good, err := b.Client().LedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: payee, Amount: "1000", Memo: rightMemo})
	if err != nil {
		t.Fatal(err)
	}
	if err := unlockWith(b, good.BlockIndex); err != nil {
		t.Fatalf("B unlocking with its own full payment = %v", err)
	}
	if exp, err := b.Client().ModelExport(t.Context(), res.ModelID, filepath.Join(t.TempDir(), "b.bin")); err != nil || exp.SHA256 != sum {
		t.Errorf("B export = %+v, %v; want sha256 %s", exp, err, sum)
	}
	if _, err := unpaid.Client().ModelExport(t.Context(), res.ModelID, filepath.Join(t.TempDir(), "c.bin")); adminrpc.CodeOf(err) != adminrpc.CodeNotUnlocked {
		t.Errorf("unpaid trainer export = %v, want code %d", err, adminrpc.CodeNotUnlocked)
	}
	if err := unlockWith(unpaid, good.BlockIndex); adminrpc.CodeOf(err) != adminrpc.CodePaymentUsed {
		t.Errorf("a third trainer presenting B's consumed block = %v, want code %d", err, adminrpc.CodePaymentUsed)
	}

	// A model published while its publisher knew no coordinator: no coordinator holds its key.
	loner := c.NewNodes("loner", 1, "publisher")[0]
	useReplica(t, replica.URL(), loner)
	c.start(loner)
	path2, _ := writeRandom(t, 1<<20)
	res2, err := loner.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path2, Name: "unescrowed", Price: "5"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loner.Client().NodeConnect(t.Context(), coord.P2PAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error { _, err := unpaid.Client().ModelGet(t.Context(), res2.ModelID); return err })
	waitFor(t, 30*time.Second, func() error { _, err := coord.Client().ModelGet(t.Context(), res2.ModelID); return err })
	before, err := unpaid.Client().LedgerBalance(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unpaid.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: res2.ModelID}); adminrpc.CodeOf(err) != adminrpc.CodeNotFound {
		t.Errorf("unlock of a model no coordinator holds a key for = %v, want code %d", err, adminrpc.CodeNotFound)
	}
	if after, _ := unpaid.Client().LedgerBalance(t.Context()); after.Balance != before.Balance {
		t.Errorf("balance went from %s to %s: the trainer paid for a model nobody can unlock", before.Balance, after.Balance)
	}
}
