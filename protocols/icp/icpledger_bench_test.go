package icp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

// BenchmarkVerifyPaymentKinds verifies one payment 1, 100 and 10,000 blocks behind the certified
// tip on the ICP ledger's own path (query_encoded_blocks, protobuf blocks, parent_hash chain) and
// on the ICRC-3 path (icrc3_get_tip_certificate, ICRC-3 blocks, phash chain), in the same run,
// with a fresh client per verification (no remembered hashes; the client and its root key are
// set up outside the timed part), and with a client that verified it before. Reports bytes
// fetched and HTTP requests per verification:
//
//	go test ./protocols/icp -run '^$' -bench VerifyPaymentKinds -benchtime 10x
func BenchmarkVerifyPaymentKinds(b *testing.B) {
	for _, behind := range []int{1, 100, 10_000} {
		for _, kind := range []icp.LedgerKind{icp.KindICP, icp.KindICRC3} {
			sim, err := icptest.New(icptest.Options{ICPLedger: kind == icp.KindICP, PageSize: 2000})
			if err != nil {
				b.Fatal(err)
			}
			cnt := &counted{}
			inner := sim.Handler()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				cnt.requests.Add(1)
				inner.ServeHTTP(countingWriter{w, cnt}, r)
			}))
			_, pk, _ := ed25519.GenerateKey(rand.Reader)
			_, rk, _ := ed25519.GenerateKey(rand.Reader)
			cfg := func(k ed25519.PrivateKey) icp.Config {
				return icp.Config{ReplicaURL: srv.URL, LedgerID: icptest.LedgerID, FetchRootKey: true, Key: k, LedgerKind: string(kind)}
			}
			payer, err := icp.New(cfg(pk))
			if err != nil {
				b.Fatal(err)
			}
			sim.Mint(payer.Principal(), 1_000_000)
			to, from := icp.Account{Owner: icp.Account{}.Owner}, icp.Account{Owner: payer.Principal()}
			payee, _ := icp.New(cfg(rk))
			to.Owner = payee.Principal()
			idx, err := payer.Transfer(b.Context(), to, big.NewInt(700), []byte("m"), time.Now())
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < behind; i++ {
				sim.Mint(from.Owner, 1) // filler blocks between the payment and the tip
			}
			want := icp.Expect{Payer: from, Payee: to, MinAmount: big.NewInt(700), Memo: []byte("m")}
			b.Run(fmt.Sprintf("behind=%d/%s", behind, kind), func(b *testing.B) {
				var sumBytes, sumReqs int64
				for b.Loop() {
					b.StopTimer()
					c, err := icp.New(cfg(rk))
					if err != nil {
						b.Fatal(err)
					}
					cnt.bytes.Store(0)
					cnt.requests.Store(0)
					b.StartTimer()
					if _, err := c.VerifyPayment(b.Context(), idx, want); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					sumBytes += cnt.bytes.Load()
					sumReqs += cnt.requests.Load()
					b.StartTimer()
				}
				b.ReportMetric(float64(sumBytes)/float64(b.N), "bytes_fetched/op")
				b.ReportMetric(float64(sumReqs)/float64(b.N), "http_requests/op")
			})
			// A client that verified the payment before walks only what is new (here nothing).
			b.Run(fmt.Sprintf("behind=%d/%s/remembered", behind, kind), func(b *testing.B) {
				if _, err := payee.VerifyPayment(b.Context(), idx, want); err != nil {
					b.Fatal(err)
				}
				var sumBytes int64
				for b.Loop() {
					cnt.bytes.Store(0)
					if _, err := payee.VerifyPayment(b.Context(), idx, want); err != nil {
						b.Fatal(err)
					}
					sumBytes += cnt.bytes.Load()
				}
				b.ReportMetric(float64(sumBytes)/float64(b.N), "bytes_fetched/op")
			})
			srv.Close()
		}
	}
}
