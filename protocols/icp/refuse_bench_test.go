package icp_test

import (
	"math/big"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

// BenchmarkRefuseBogusBlock measures what refusing a bogus payment claim costs the verifier
// (the coordinator's side of an unlock request) with 10,000 blocks between the named block and
// the tip: refusals per second and the bytes and HTTP requests fetched from the ledger per
// refusal. A fresh client each time, so no verified-hash cache helps.
//
//	go test ./protocols/icp -run '^$' -bench RefuseBogusBlock -benchtime 200x
func BenchmarkRefuseBogusBlock(b *testing.B) {
	sim, cnt, payer, payee := countedSetup(b, icptest.Options{}, nil)
	ctx := b.Context()
	to, from := icp.Account{Owner: payee.Principal()}, icp.Account{Owner: payer.Principal()}
	idx, err := payer.Transfer(ctx, to, big.NewInt(700), []byte("another model"), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 10_000; i++ {
		sim.Mint(payee.Principal(), 1)
	}
	want := icp.Expect{Payer: from, Payee: to, MinAmount: big.NewInt(700), Memo: []byte("this model")}
	cfg := func() icp.Config {
		return icp.Config{ReplicaURL: cnt.url, LedgerID: icptest.LedgerID, FetchRootKey: true, Key: cnt.key}
	}
	for _, bc := range []struct {
		name  string
		block uint64
	}{
		{"block0-mint", 0},
		{"wrong-memo-10k-behind", idx},
		{"beyond-tip", 1 << 40},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var bytes, reqs int64
			for b.Loop() {
				b.StopTimer()
				c, err := icp.New(cfg()) // fresh: no cache; its root-key fetch is not counted
				if err != nil {
					b.Fatal(err)
				}
				cnt.reset()
				b.StartTimer()
				if _, err := c.VerifyPayment(ctx, bc.block, want); err == nil {
					b.Fatal("a bogus claim verified")
				}
				bytes += cnt.bytes.Load()
				reqs += cnt.requests.Load()
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "ledger-bytes/refusal")
			b.ReportMetric(float64(reqs)/float64(b.N), "ledger-requests/refusal")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refusals/s")
		})
	}
}
