package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/calimero/calimerotest"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
	"github.com/califusion/califusion/protocols/keys"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Attack 6 of issue 12 (paying twice) and the payment items of attack 10 (unlock with a block
// skips anchoring; verifying a bogus block walks the chain for free).

const payPrice = 100

// transfersFrom counts the transfer blocks on the emulated ledger paid by who.
func transfersFrom(replica *icptest.Sim, who string) int {
	p := principal.MustDecode(who)
	l := replica.Ledger()
	n := 0
	for i := uint64(0); i < l.Len(); i++ {
		b := l.Block(i)
		tx := b.Field("tx")
		if tx == nil {
			continue
		}
		if bt := b.Field("btype"); bt != nil && bt.Text != nil && *bt.Text != "1xfer" {
			continue
		}
		from := tx.Field("from")
		if from != nil && from.Array != nil && len(*from.Array) > 0 && (*from.Array)[0].Blob != nil && bytes.Equal(*(*from.Array)[0].Blob, p.Raw) {
			n++
		}
	}
	return n
}

// payNet is a coordinator that publishes one priced model and trainers that know it.
type payNet struct {
	c       *cluster
	coord   *harness.Node
	tr      []*harness.Node
	modelID string
}

// newPayNet starts a publisher-coordinator and trainers on ledgerURL (edit adjusts configs and
// environments before the start), funds the trainers, publishes a model at payPrice and waits
// until every trainer knows the model and the coordinator.
func newPayNet(t *testing.T, replica *icptest.Sim, ledgerURL string, trainers int, edit func(coord *harness.Node, tr []*harness.Node)) *payNet {
	t.Helper()
	c := newCluster(t)
	coord := c.NewNodes("coord", 1, "publisher", "coordinator")[0]
	tr := c.NewNodes("tr", trainers, "trainer")
	useReplica(t, ledgerURL, append([]*harness.Node{coord}, tr...)...)
	if edit != nil {
		edit(coord, tr)
	}
	c.start(coord)
	for _, n := range tr {
		c.start(n, "--bootstrap", coord.P2PAddr())
		replica.Mint(principal.MustDecode(n.Info().ICPPrincipal), 1_000_000)
	}
	path, _ := writeRandom(t, 256<<10)
	res, err := coord.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "priced", Price: "100"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tr {
		waitKnows(t, n, res.ModelID, coord)
	}
	return &payNet{c: c, coord: coord, tr: tr, modelID: res.ModelID}
}

// waitKnows waits until n has model id in its catalog and knows coord as a coordinator.
func waitKnows(t *testing.T, n *harness.Node, id string, coord *harness.Node) {
	t.Helper()
	waitFor(t, 30*time.Second, func() error { _, err := n.Client().ModelGet(t.Context(), id); return err })
	waitHeard(t, coord, n)
}

// waitCrashed waits until n stops answering, then reaps it.
func waitCrashed(t *testing.T, n *harness.Node) {
	t.Helper()
	waitFor(t, 20*time.Second, func() error {
		if _, err := n.Client().NodeInfo(t.Context()); err == nil {
			return errf("%s is still answering; it should have crashed", n.Name)
		}
		return nil
	})
	n.Kill()
}

func modelPay(n *harness.Node, ctx context.Context, id string, again bool) (adminrpc.PayResult, error) {
	var r adminrpc.PayResult
	return r, n.Client().Call(ctx, "model_pay", adminrpc.PayParams{ModelID: id, Again: again}, &r)
}

// TestAdversaryPayOnceAcrossCoordinatorCrash: the coordinator dies after the trainer paid and
// before it answered the unlock; after its restart the trainer's retry of model_unlock reuses
// the payment instead of paying again. model_pay on the paid lineage then returns that same
// block (already_paid), and only `again` (CLI `model pay --again`) pays once more.
func TestAdversaryPayOnceAcrossCoordinatorCrash(t *testing.T) {
	replica := startReplica(t)
	net := newPayNet(t, replica, replica.URL(), 1, func(coord *harness.Node, _ []*harness.Node) {
		coord.Env = []string{"CALIFUSION_CRASH_AT=unlock-verified"}
	})
	tr, coord := net.tr[0], net.coord
	who := tr.Info().ICPPrincipal
	if _, err := tr.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: net.modelID}); err == nil {
		t.Fatal("model_unlock succeeded although the coordinator was set to crash before answering")
	}
	waitCrashed(t, coord)
	if got := transfersFrom(replica, who); got != 1 {
		t.Fatalf("transfers from the trainer after the failed unlock = %d, want 1", got)
	}
	coord.Env = nil
	net.c.start(coord)
	if _, err := tr.Client().NodeConnect(t.Context(), coord.P2PAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: net.modelID}); err != nil {
		t.Fatalf("model_unlock after the coordinator restarted = %v", err)
	}
	if got := transfersFrom(replica, who); got != 1 {
		t.Errorf("transfers from the trainer after the retried unlock = %d, want 1 (the retry paid again)", got)
	}

	first, err := modelPay(tr, t.Context(), net.modelID, false)
	if err != nil {
		t.Fatal(err)
	}
	second, err := modelPay(tr, t.Context(), net.modelID, false)
	if err != nil || second.BlockIndex != first.BlockIndex || !second.AlreadyPaid {
		t.Errorf("model_pay twice = %+v then %+v (%v); want the same block, already_paid", first, second, err)
	}
	if got := transfersFrom(replica, who); got != 1 {
		t.Errorf("transfers after model_pay on a paid lineage = %d, want 1", got)
	}
	out := cli(t, false, "--datadir", tr.Datadir, "model", "pay", net.modelID, "--again")
	if !strings.Contains(out, "paid 0.000001 ICP (100 base units) in block") || strings.Contains(out, "already") {
		t.Errorf("model pay --again printed %q, want a new payment", out)
	}
	if got := transfersFrom(replica, who); got != 2 {
		t.Errorf("transfers after model pay --again = %d, want 2", got)
	}
	if again, err := modelPay(tr, t.Context(), net.modelID, false); err != nil || again.BlockIndex == first.BlockIndex || !again.AlreadyPaid {
		t.Errorf("model_pay after --again = %+v, %v; want the new block, already_paid", again, err)
	}
}

// TestAdversaryTrainerKilledAfterTransfer: the trainer is killed (-9, by the failpoint) right
// after its transfer reached the ledger and before it recorded the block. After a restart,
// model_unlock re-sends the same transaction, the ledger answers Duplicate with the first block,
// and the trainer is unlocked with exactly one transfer on the ledger.
func TestAdversaryTrainerKilledAfterTransfer(t *testing.T) {
	replica := startReplica(t)
	net := newPayNet(t, replica, replica.URL(), 1, func(_ *harness.Node, tr []*harness.Node) {
		tr[0].Env = []string{"CALIFUSION_CRASH_AT=pay-transferred"}
	})
	tr, coord := net.tr[0], net.coord
	who := tr.Info().ICPPrincipal
	if _, err := tr.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: net.modelID}); err == nil {
		t.Fatal("model_unlock succeeded although the trainer was set to crash after its transfer")
	}
	waitCrashed(t, tr)
	if got := transfersFrom(replica, who); got != 1 {
		t.Fatalf("transfers from the trainer before its restart = %d, want 1", got)
	}
	tr.Env = nil
	net.c.start(tr, "--bootstrap", coord.P2PAddr())
	waitKnows(t, tr, net.modelID, coord)
	if _, err := tr.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: net.modelID}); err != nil {
		t.Fatalf("model_unlock after the restart = %v", err)
	}
	if got := transfersFrom(replica, who); got != 1 {
		t.Errorf("transfers from the trainer = %d, want exactly 1", got)
	}
	bal, err := tr.Client().LedgerBalance(t.Context())
	if err != nil || bal.Balance != "989900" { // 1,000,000 - price 100 - fee 10,000
		t.Errorf("trainer balance = %+v, %v; want 989900 (one payment and one fee)", bal, err)
	}
	if p, err := modelPay(tr, t.Context(), net.modelID, false); err != nil || !p.AlreadyPaid {
		t.Errorf("model_pay after the recovered payment = %+v, %v; want already_paid", p, err)
	}
}

// countingLedger serves replica through a proxy that counts requests and reply bytes: what the
// coordinator fetched from the ledger for each request it answered.
type countingLedger struct {
	requests, bytes atomic.Int64
	url             string
}

type countingResponse struct {
	http.ResponseWriter
	c *countingLedger
}

func (w countingResponse) Write(b []byte) (int, error) {
	w.c.bytes.Add(int64(len(b)))
	return w.ResponseWriter.Write(b)
}

func newCountingLedger(t *testing.T, replica *icptest.Sim) *countingLedger {
	t.Helper()
	c := &countingLedger{}
	h := replica.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.requests.Add(1)
		h.ServeHTTP(countingResponse{w, c}, r)
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

// TestAdversaryBogusUnlockBlocks: an attacker peer asks the coordinator to unlock against blocks
// that are not its payment: block 0 (a mint), a block far behind the tip, an honest trainer's
// payment, its own transfer bound to another model, and a block beyond the tip. Each is refused
// after the coordinator fetched about one block (a few KiB), not a walk to the tip; past its
// budget of verifications the attacker is refused without any ledger traffic, while an honest
// trainer still pays and unlocks.
func TestAdversaryBogusUnlockBlocks(t *testing.T) {
	replica := startReplica(t)
	counted := newCountingLedger(t, replica)
	const budget = 6
	net := newPayNet(t, replica, counted.url, 2, func(coord *harness.Node, _ []*harness.Node) {
		if err := coord.EditConfig(func(cfg *config.Config) { cfg.ICP.VerificationsPerPeer = budget }); err != nil {
			t.Fatal(err)
		}
	})
	honest, late := net.tr[0], net.tr[1]
	if _, err := honest.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: net.modelID}); err != nil {
		t.Fatalf("honest model_unlock = %v", err)
	}
	honestPay, err := modelPay(honest, t.Context(), net.modelID, false)
	if err != nil {
		t.Fatal(err)
	}

	// The late trainer pays by hand (its block not consumed yet): the attacker will claim it.
	raw, _ := hex.DecodeString(net.modelID)
	lateID, _ := peer.Decode(late.Info().PeerID)
	latePay, err := late.Client().LedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: net.coord.Info().ICPPrincipal, Amount: "100", Memo: hex.EncodeToString(keys.Memo([32]byte(raw), lateID))})
	if err != nil {
		t.Fatal(err)
	}

	a := newAttacker(t, net.coord)
	acct := a.ledger(replica, 1_000_000)
	payee := principal.MustDecode(net.coord.Info().ICPPrincipal)
	// The attacker's own transfer at the price, bound to another lineage.
	wrongMemo := keys.Memo([32]byte{1}, a.h.ID())
	own, err := acct.Transfer(t.Context(), icp.Account{Owner: payee}, big.NewInt(payPrice), wrongMemo, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3000; i++ { // the blocks a walk from the tip would fetch
		replica.Mint(payee, 1)
	}
	farBehind := own + 1 // a mint
	coordID := a.peerOf(net.coord)
	unlock := func(block uint64, payer string) error {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		_, err := keys.Request(ctx, a.h, coordID, keys.PurposeUnlock, &keys.Unlock{Model: raw, Ledger: icptest.LedgerID, Payer: payer, Block: block})
		return err
	}
	codeOf := func(err error) int {
		var ke *keys.Error
		if errors.As(err, &ke) {
			return ke.Code
		}
		return 0
	}
	me := acct.Principal().Encode()
	claims := []struct {
		name  string
		block uint64
		payer string
	}{
		{"block 0", 0, me},
		{"a mint far behind the tip", farBehind, me},
		{"its own transfer for another model", own, me},
		{"another trainer's payment, claimed as its payer", latePay.BlockIndex, late.Info().ICPPrincipal},
		{"a block beyond the tip", 1 << 40, me},
		{"block 0 again", 0, me},
		// Refused from the coordinator's records, before the budget or the ledger.
		{"an honest trainer's consumed payment", honestPay.BlockIndex, honest.Info().ICPPrincipal},
	}
	if len(claims) != budget+1 {
		t.Fatalf("the test needs %d claims that reach the ledger to spend the budget", budget)
	}
	for _, cl := range claims {
		counted.requests.Store(0)
		counted.bytes.Store(0)
		err := unlock(cl.block, cl.payer)
		if code := codeOf(err); code != adminrpc.CodePaymentInvalid && code != adminrpc.CodePaymentUsed {
			t.Errorf("unlock with %s = %v, want code %d or %d", cl.name, err, adminrpc.CodePaymentInvalid, adminrpc.CodePaymentUsed)
		}
		r, b := counted.requests.Load(), counted.bytes.Load()
		t.Logf("refusing %s: %d ledger requests, %d bytes", cl.name, r, b)
		if r > 3 || b > 16<<10 {
			t.Errorf("refusing %s cost %d ledger requests and %d bytes, want at most 3 and 16 KiB", cl.name, r, b)
		}
	}
	// The budget is spent: refused before the ledger is asked.
	for i := 0; i < 3; i++ {
		counted.requests.Store(0)
		err := unlock(0, me)
		if code := codeOf(err); code != adminrpc.CodeUnavailable || !strings.Contains(err.Error(), "too many") {
			t.Errorf("unlock %d past the budget = %v, want code %d (rate limited)", i, err, adminrpc.CodeUnavailable)
		}
		if r := counted.requests.Load(); r != 0 {
			t.Errorf("a rate-limited unlock made %d ledger requests, want 0", r)
		}
	}
	// Another peer is not affected, and the block the attacker claimed still serves its payer.
	block := latePay.BlockIndex
	if _, err := late.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: net.modelID, Ledger: icptest.LedgerID, BlockIndex: &block}); err != nil {
		t.Errorf("an honest trainer's model_unlock during the attack = %v", err)
	}
}

// TestAdversaryUnlockWithBlockRequiresAnchor: under calimero.anchoring = "require", a model with
// no anchor is refused by model_unlock with an explicit block, as model_pay refuses it (before,
// only the pay path checked).
func TestAdversaryUnlockWithBlockRequiresAnchor(t *testing.T) {
	sim, err := calimerotest.New(calimerotest.Options{Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	ctxID := sim.CreateContext()
	replica := startReplica(t)
	net := newPayNet(t, replica, replica.URL(), 1, func(_ *harness.Node, tr []*harness.Node) {
		m := sim.Node(0)
		if err := tr[0].EditConfig(func(cfg *config.Config) {
			cfg.Calimero = config.Calimero{Anchoring: "require", URL: m.URL(), ContextID: ctxID, ExecutorKey: m.Identity()}
		}); err != nil {
			t.Fatal(err)
		}
	})
	tr := net.tr[0]
	if _, err := modelPay(tr, t.Context(), net.modelID, false); adminrpc.CodeOf(err) != adminrpc.CodeIntegrity {
		t.Fatalf("model_pay of an unanchored model under require = %v, want code %d", err, adminrpc.CodeIntegrity)
	}
	// Pay by hand with the right memo, then present the block.
	raw, _ := hex.DecodeString(net.modelID)
	trID, _ := peer.Decode(tr.Info().PeerID)
	memo := hex.EncodeToString(keys.Memo([32]byte(raw), trID))
	paid, err := tr.Client().LedgerTransfer(t.Context(), adminrpc.TransferParams{ToPrincipal: net.coord.Info().ICPPrincipal, Amount: "100", Memo: memo})
	if err != nil {
		t.Fatal(err)
	}
	block := paid.BlockIndex
	if _, err := tr.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: net.modelID, Ledger: icptest.LedgerID, BlockIndex: &block}); adminrpc.CodeOf(err) != adminrpc.CodeIntegrity {
		t.Errorf("model_unlock with an explicit block of an unanchored model under require = %v, want code %d", err, adminrpc.CodeIntegrity)
	}
}
