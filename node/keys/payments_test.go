package keys

import (
	"crypto/rand"
	"errors"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/candid/idl"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// payTestClient is a keys client with just a store and a ledger client, on an emulated ledger
// whose clock the test can move.
func payTestClient(t *testing.T) (*Client, *icp.Client, *store.Store, *icptest.Sim, *atomic.Int64) {
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
	st := newStore(t)
	c := icpClient(t, sim.URL())
	return NewClient(Config{Self: contenttest.NewSigner(t).ID}, Deps{Store: st, Ledger: newFakeLedgerSvc(c, 10)}), c, st, sim, &skew
}

// icpClient is a ledger client on the emulated replica at url, paying from a fresh Ed25519 key.
func icpClient(t *testing.T, url string) *icp.Client {
	t.Helper()
	c, err := icp.New(icp.Config{ReplicaURL: url, LedgerID: icptest.LedgerID, FetchRootKey: true, Key: mustEd25519(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestResumePaymentPastTheWindow: a pending payment older than the ledger's deduplication window
// is not re-sent. If it landed, the ledger search finds its block and records it; if it did not
// and could still land, nothing is paid and the error names the record; once it can no longer
// land, the caller may pay anew.
func TestResumePaymentPastTheWindow(t *testing.T) {
	n, c, st, sim, skew := payTestClient(t)
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
	if err != nil || got.Block != res.Ok.BigInt().Uint64() {
		t.Errorf("resumePayment(landed 25 h ago) = %+v, %v; want block %d", got, err, res.Ok.BigInt().Uint64())
	}
	var rec store.Paid
	if err := st.Get(key("landed"), &rec); err != nil || !rec.Done || rec.Block != got.Block {
		t.Errorf("record after resumePayment = %+v, %v; want done with the block", rec, err)
	}
	if sim.Ledger().Len() != before {
		t.Errorf("resumePayment sent a transfer for a payment that had landed")
	}

	// Not on the ledger, at the end of the window: could still land, so nothing is paid.
	_, err = n.resumePayment(t.Context(), c, key("edge"), pending(24*time.Hour+time.Minute, "edge"))
	if apierr.CodeOf(err) != apierr.Unavailable || sim.Ledger().Len() != before {
		t.Errorf("resumePayment(missing, 24h01m old) = %v, want code %d and no transfer", err, apierr.Unavailable)
	}
	// Not on the ledger and past any landing: the caller pays anew.
	if _, err := n.resumePayment(t.Context(), c, key("lost"), pending(30*time.Hour, "lost")); !errors.Is(err, ledger.ErrNeverLanded) || sim.Ledger().Len() != before {
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
	if err != nil || again.Block != first.Block || sim.Ledger().Len() != before+1 {
		t.Errorf("re-sending a pending payment = %+v, %v; want block %d and one transfer", again, err, first.Block)
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
	n, c, st, _, _ := payTestClient(t)
	key := store.PaidKey(icptest.LedgerID, [32]byte{7}, c.Principal().Encode())
	rec := &store.Paid{To: c.Ledger().Encode(), Amount: "100", Memo: []byte("poor"), CreatedAt: uint64(time.Now().UnixNano()), Model: "m", Started: time.Now()}
	if err := st.Put(key, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := n.resumePayment(t.Context(), c, key, rec); err == nil {
		t.Fatal("resumePayment without funds succeeded")
	}
	if err := st.Get(key, &store.Paid{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record after an insufficient-funds refusal: %v, want it gone", err)
	}
}
