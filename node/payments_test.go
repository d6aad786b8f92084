package node

import (
	"crypto/rand"
	"errors"
	"log/slog"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/candid/idl"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// payTestNode is a node with just a store and a ledger client, on an emulated ledger whose clock
// the test can move.
func payTestNode(t *testing.T) (*Node, *icptest.Sim, *atomic.Int64) {
	t.Helper()
	var skew atomic.Int64 // the ledger's clock offset, ns
	sim, err := icptest.New(icptest.Options{Clock: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	cfg := config.Default()
	cfg.ICP = config.ICP{ReplicaURL: sim.URL(), LedgerCanisterID: icptest.LedgerID, FetchRootKey: true}
	n := &Node{cfg: cfg, key: priv, store: st, log: slog.New(slog.DiscardHandler)}
	n.ledger = &ledger{n: n}
	return n, sim, &skew
}

// TestResumePaymentPastTheWindow: a pending payment older than the ledger's deduplication window
// is not re-sent. If it landed, the ledger search finds its block and records it; if it did not
// and could still land, nothing is paid and the error names the record; once it can no longer
// land, the caller may pay anew.
func TestResumePaymentPastTheWindow(t *testing.T) {
	n, sim, skew := payTestNode(t)
	c, err := n.ledger.client()
	if err != nil {
		t.Fatal(err)
	}
	sim.Mint(c.Principal(), 1_000_000)
	payee, _ := icp.New(icp.Config{ReplicaURL: sim.URL(), LedgerID: icptest.LedgerID, FetchRootKey: true, Key: mustEd25519(t)})
	from, err := c.LogLength(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pending := func(age time.Duration, memo string) *store.Paid {
		return &store.Paid{To: payee.Principal().Encode(), Amount: "100", Memo: []byte(memo),
			CreatedAt: uint64(time.Now().Add(-age).UnixNano()), FromBlock: from, Model: "m", Started: time.Now().Add(-age)}
	}
	key := func(memo string) store.Key { return store.PaidKey(icptest.LedgerID, [32]byte{byte(len(memo))}, memo) }

	// Landed 25 h ago (the ledger's clock moved back for the transfer), never recorded.
	landed := pending(25*time.Hour, "landed")
	skew.Store(int64(-25 * time.Hour))
	m := landed.Memo
	at := landed.CreatedAt
	res := sim.Ledger().Transfer(c.Principal(), icp.TransferArg{To: icp.Account{Owner: payee.Principal()}, Amount: idl.NewBigNat(big.NewInt(100)), Memo: &m, CreatedAtTime: &at})
	skew.Store(0)
	if res.Ok == nil {
		t.Fatalf("setup transfer = %+v", res.Err)
	}
	for i := 0; i < 5; i++ {
		sim.Mint(payee.Principal(), 1)
	}
	before := sim.Ledger().Len()
	got, err := n.resumePayment(t.Context(), c, key("landed"), landed)
	if err != nil || got.BlockIndex != res.Ok.BigInt().Uint64() {
		t.Errorf("resumePayment(landed 25 h ago) = %+v, %v; want block %d", got, err, res.Ok.BigInt().Uint64())
	}
	var rec store.Paid
	if err := n.store.Get(key("landed"), &rec); err != nil || !rec.Done || rec.Block != got.BlockIndex {
		t.Errorf("record after resumePayment = %+v, %v; want done with the block", rec, err)
	}
	if sim.Ledger().Len() != before {
		t.Errorf("resumePayment sent a transfer for a payment that had landed")
	}

	// Not on the ledger, at the end of the window: could still land, so nothing is paid.
	_, err = n.resumePayment(t.Context(), c, key("edge"), pending(24*time.Hour+time.Minute, "edge"))
	if adminrpc.CodeOf(err) != adminrpc.CodeUnavailable || sim.Ledger().Len() != before {
		t.Errorf("resumePayment(missing, 24h01m old) = %v, want code %d and no transfer", err, adminrpc.CodeUnavailable)
	}
	// Not on the ledger and past any landing: the caller pays anew.
	if _, err := n.resumePayment(t.Context(), c, key("lost"), pending(30*time.Hour, "lost")); !errors.Is(err, errNeverLanded) || sim.Ledger().Len() != before {
		t.Errorf("resumePayment(missing, 30 h old) = %v, want errNeverLanded and no transfer", err)
	}
	// Inside the window: re-sent as the same transaction, deduplicated by the ledger.
	fresh := pending(time.Minute, "fresh")
	first, err := n.resumePayment(t.Context(), c, key("fresh"), fresh)
	if err != nil {
		t.Fatal(err)
	}
	fresh.Done = false
	again, err := n.resumePayment(t.Context(), c, key("fresh"), fresh)
	if err != nil || again.BlockIndex != first.BlockIndex || sim.Ledger().Len() != before+1 {
		t.Errorf("re-sending a pending payment = %+v, %v; want block %d and one transfer", again, err, first.BlockIndex)
	}
}

func mustEd25519(t *testing.T) []byte {
	t.Helper()
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	raw, err := priv.Raw()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestRefusedPaymentIsForgotten: a pending payment the ledger refuses for insufficient funds
// never executed (the ledger deduplicates before it checks the balance), so its record goes and
// the next payment starts afresh.
func TestRefusedPaymentIsForgotten(t *testing.T) {
	n, _, _ := payTestNode(t)
	c, err := n.ledger.client()
	if err != nil {
		t.Fatal(err)
	}
	key := store.PaidKey(icptest.LedgerID, [32]byte{7}, c.Principal().Encode())
	rec := &store.Paid{To: c.Ledger().Encode(), Amount: "100", Memo: []byte("poor"), CreatedAt: uint64(time.Now().UnixNano()), Model: "m", Started: time.Now()}
	if err := n.store.Put(key, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := n.resumePayment(t.Context(), c, key, rec); err == nil {
		t.Fatal("resumePayment without funds succeeded")
	}
	if err := n.store.Get(key, &store.Paid{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record after an insufficient-funds refusal: %v, want it gone", err)
	}
}

// TestVerificationBudgetPerPeer: a peer gets icp.verifications_per_peer verifications, then is
// refused; another peer has its own budget.
func TestVerificationBudgetPerPeer(t *testing.T) {
	cfg := config.Default()
	cfg.ICP.VerificationsPerPeer = 3
	n := &Node{cfg: cfg}
	l := &ledger{n: n}
	for i := 0; i < 3; i++ {
		if !l.allowVerify("peer-a") {
			t.Fatalf("allowVerify(peer-a) #%d = false, want true within the budget", i+1)
		}
	}
	if l.allowVerify("peer-a") {
		t.Errorf("allowVerify(peer-a) #4 = true, want false past the budget")
	}
	if !l.allowVerify("peer-b") {
		t.Errorf("allowVerify(peer-b) = false, want its own budget")
	}
}
