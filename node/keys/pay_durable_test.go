package keys

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
	"github.com/califusion/califusion/store"
)

// TestPaymentRecordsAreSynced: pay syncs the store after recording the pending payment and
// before the transfer reaches the ledger (a power cut in between must not lose the record, or a
// retry would pay twice), and again after recording the block.
func TestPaymentRecordsAreSynced(t *testing.T) {
	sim, err := icptest.New(icptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// The replica behind a proxy that notes the store's syncs when the first update call (the
	// transfer) arrives.
	var syncsAtTransfer atomic.Int64
	syncsAtTransfer.Store(-1)
	h := sim.Handler()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/call") {
			syncsAtTransfer.CompareAndSwap(-1, int64(st.Syncs()))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)

	c := icpClient(t, proxy.URL)
	k := NewClient(Config{Self: contenttest.NewSigner(t).ID}, Deps{Store: st, Ledger: newFakeLedgerSvc(c, 10)})
	sim.Mint(c.Principal(), 1_000_000)
	payee, err := icp.New(icp.Config{ReplicaURL: sim.URL(), LedgerID: icptest.LedgerID, FetchRootKey: true, Key: mustEd25519(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := &catalog.Record{ID: content.ModelID{1}, Manifest: &content.Manifest{Price: "100", Payee: content.Account{Owner: payee.Principal().Encode()}}}

	res, err := k.pay(t.Context(), r, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := syncsAtTransfer.Load(); got < 1 {
		t.Errorf("store syncs when the transfer reached the ledger = %d, want at least 1 (the pending record)", got)
	}
	if got, want := st.Syncs(), uint64(syncsAtTransfer.Load())+1; got < want {
		t.Errorf("store syncs after pay = %d, want at least %d (the block's record too)", got, want)
	}
	var rec store.Paid
	if err := st.Get(store.PaidKey(c.Ledger().Encode(), r.Lineage(), c.Principal().Encode()), &rec); err != nil || !rec.Done || rec.Block != res.Block {
		t.Errorf("payment record after pay = %+v, %v; want done with block %d", rec, err, res.Block)
	}
}
