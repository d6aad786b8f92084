package icp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

// BenchmarkVerifyPayment verifies one payment with the certified tip 1, 100 and 10,000 blocks
// ahead of it, with a fresh client each time (walks the whole way) and with a client that
// remembers the last verified tip (walks only what is new: here nothing):
//
//	go test ./protocols/icp -run '^$' -bench VerifyPayment -benchtime 20x
func BenchmarkVerifyPayment(b *testing.B) {
	for _, ahead := range []int{1, 100, 10_000} {
		sim, err := icptest.New(icptest.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := sim.Start("127.0.0.1:0"); err != nil {
			b.Fatal(err)
		}
		_, pk, _ := ed25519.GenerateKey(rand.Reader)
		_, rk, _ := ed25519.GenerateKey(rand.Reader)
		cfg := func(k ed25519.PrivateKey) icp.Config {
			return icp.Config{ReplicaURL: sim.URL(), LedgerID: icptest.LedgerID, FetchRootKey: true, Key: k}
		}
		payer, _ := icp.New(cfg(pk))
		payee, _ := icp.New(cfg(rk))
		sim.Mint(payer.Principal(), 1_000_000)
		to, from := icp.Account{Owner: payee.Principal()}, icp.Account{Owner: payer.Principal()}
		idx, err := payer.Transfer(b.Context(), to, big.NewInt(700), []byte("m"), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		for i := 1; i < ahead; i++ {
			sim.Mint(payee.Principal(), 1) // filler blocks between the payment and the tip
		}
		want := icp.Expect{Payer: from, Payee: to, MinAmount: big.NewInt(700), Memo: []byte("m")}
		b.Run(fmt.Sprintf("ahead=%d/fresh", ahead), func(b *testing.B) {
			for b.Loop() {
				c, _ := icp.New(cfg(rk))
				if _, err := c.VerifyPayment(b.Context(), idx, want); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("ahead=%d/remembered", ahead), func(b *testing.B) {
			if _, err := payee.VerifyPayment(b.Context(), idx, want); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := payee.VerifyPayment(b.Context(), idx, want); err != nil {
					b.Fatal(err)
				}
			}
		})
		sim.Close()
	}
}
