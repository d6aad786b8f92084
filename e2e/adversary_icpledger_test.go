package e2e

import (
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	pb "github.com/aviate-labs/agent-go/clients/ledger/proto/v1"
	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp/icptest"
	"github.com/califusion/califusion/protocols/keys"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// TestICPLedgerForgedPayments: a coordinator verifying on the ICP ledger itself refuses a payment
// block a lying replica inflated (its encoding no longer hashes to its successor's parent_hash),
// a mint presented as a payment, and any payment while the replica certifies a forged tip; the
// honest payment unlocks and exports once the tip is certified again.
func TestICPLedgerForgedPayments(t *testing.T) {
	replica := startICPLedger(t, icptest.Options{})
	c := newCluster(t)
	coord := c.NewNodes("fc", 1, "publisher", "coordinator")[0]
	tr := c.NewNodes("ft", 1, "trainer")[0]
	useReplica(t, replica.URL(), coord, tr)
	c.start(coord)
	c.start(tr, "--bootstrap", coord.P2PAddr())
	replica.Mint(principal.MustDecode(tr.Info().ICPPrincipal), 10_000_000)
	waitHeard(t, coord, tr)
	path, sum := writeRandom(t, 256<<10)
	res, err := coord.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "forged", Price: "1000"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error { _, err := tr.Client().ModelGet(t.Context(), res.ModelID); return err })
	job, err := tr.Client().ModelFetch(t.Context(), res.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, tr, job.JobID, 30*time.Second)

	var lineage [32]byte
	raw, _ := hex.DecodeString(res.ModelID)
	copy(lineage[:], raw)
	trID, _ := peer.Decode(tr.Info().PeerID)
	memo := hex.EncodeToString(keys.Memo(lineage, trID))
	unlockWith := func(block uint64) error {
		_, err := tr.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: res.ModelID, Ledger: icptest.LedgerID, BlockIndex: &block})
		return err
	}
	payee := coord.Info().ICPPrincipal

	// A short payment the replica then reports as the full price.
	short, err := tr.Client().LedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: payee, Amount: "999", Memo: memo})
	if err != nil {
		t.Fatal(err)
	}
	tr.Client().LedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: payee, Amount: "1"}) // a successor block
	var b pb.Block
	if err := proto.Unmarshal(replica.ICP().Encoded(short.BlockIndex), &b); err != nil {
		t.Fatal(err)
	}
	b.Transaction.GetSend().Amount.E8S = 1000
	inflated, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&b)
	replica.ICP().Serve(short.BlockIndex, inflated)
	if err := unlockWith(short.BlockIndex); adminrpc.CodeOf(err) != adminrpc.CodePaymentInvalid {
		t.Errorf("unlock with an inflated block = %v, want code %d (chain broken)", err, adminrpc.CodePaymentInvalid)
	}
	if err := unlockWith(0); adminrpc.CodeOf(err) != adminrpc.CodePaymentInvalid {
		t.Errorf("unlock with the mint block = %v, want code %d", err, adminrpc.CodePaymentInvalid)
	}

	good, err := tr.Client().LedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: payee, Amount: "1000", Memo: memo})
	if err != nil {
		t.Fatal(err)
	}
	replica.ICP().ForgeTip(true)
	if err := unlockWith(good.BlockIndex); adminrpc.CodeOf(err) != adminrpc.CodePaymentInvalid {
		t.Errorf("unlock under a forged tip = %v, want code %d (uncertified)", err, adminrpc.CodePaymentInvalid)
	}
	if _, err := tr.Client().ModelExport(t.Context(), res.ModelID, filepath.Join(t.TempDir(), "x.bin")); adminrpc.CodeOf(err) != adminrpc.CodeNotUnlocked {
		t.Errorf("export before any accepted payment = %v, want code %d", err, adminrpc.CodeNotUnlocked)
	}
	replica.ICP().ForgeTip(false)
	if err := unlockWith(good.BlockIndex); err != nil {
		t.Fatalf("unlock with the honest payment under the certified tip = %v", err)
	}
	if exp, err := tr.Client().ModelExport(t.Context(), res.ModelID, filepath.Join(t.TempDir(), "x.bin")); err != nil || exp.SHA256 != sum {
		t.Errorf("export = %+v, %v; want sha256 %s", exp, err, sum)
	}
}
