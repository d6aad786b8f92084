package icp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

func setup(t *testing.T, opts icptest.Options) (*icptest.Sim, *icp.Client, *icp.Client) {
	t.Helper()
	sim, err := icptest.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	mk := func() *icp.Client {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		c, err := icp.New(icp.Config{ReplicaURL: sim.URL(), LedgerID: icptest.LedgerID, FetchRootKey: true, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	payer, payee := mk(), mk()
	sim.Mint(payer.Principal(), 1_000_000)
	return sim, payer, payee
}

func TestQueriesAndTransfer(t *testing.T) {
	for _, async := range []bool{false, true} {
		_, payer, payee := setup(t, icptest.Options{AsyncCalls: async})
		ctx := t.Context()
		if fee, err := payer.Fee(ctx); err != nil || fee.Uint64() != 10_000 {
			t.Fatalf("Fee = %v, %v", fee, err)
		}
		if d, err := payer.Decimals(ctx); err != nil || d != 8 {
			t.Errorf("Decimals = %d, %v", d, err)
		}
		if s, err := payer.Symbol(ctx); err != nil || s != "ICP" {
			t.Errorf("Symbol = %q, %v", s, err)
		}
		to := icp.Account{Owner: payee.Principal()}
		now := time.Now()
		idx, err := payer.Transfer(ctx, to, big.NewInt(5000), []byte("memo"), now)
		if err != nil {
			t.Fatalf("Transfer (async %v) = %v", async, err)
		}
		again, err := payer.Transfer(ctx, to, big.NewInt(5000), []byte("memo"), now)
		if err != nil || again != idx {
			t.Errorf("retried Transfer = %d, %v; want the first block %d (deduplicated)", again, err, idx)
		}
		if b, err := payee.Balance(ctx, to); err != nil || b.Int64() != 5000 {
			t.Errorf("payee balance = %v, %v; want 5000", b, err)
		}
		_, err = payer.Transfer(ctx, to, big.NewInt(10_000_000), nil, time.Now())
		var f *icp.TransferFailure
		if !errors.Is(err, icp.ErrInsufficientFunds) || !errors.As(err, &f) || f.Balance == nil {
			t.Errorf("overspending Transfer = %v, want ErrInsufficientFunds with the balance", err)
		}
		if _, err := payer.Transfer(ctx, to, big.NewInt(1), nil, time.Now().Add(-48*time.Hour)); !errors.Is(err, icp.ErrTooOld) {
			t.Errorf("old Transfer = %v, want ErrTooOld", err)
		}
		if _, err := payer.Transfer(ctx, to, big.NewInt(1), nil, time.Now().Add(time.Hour)); !errors.Is(err, icp.ErrCreatedInFuture) {
			t.Errorf("future Transfer = %v, want ErrCreatedInFuture", err)
		}
		if _, err := payer.Transfer(ctx, to, big.NewInt(1), make([]byte, 33), time.Now()); !errors.Is(err, icp.ErrGeneric) {
			t.Errorf("Transfer with a 33-byte memo = %v, want ErrGeneric", err)
		}
	}
}

func TestVerifyPayment(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		_, payer, payee := setup(t, icptest.Options{LegacyBlocks: legacy, PageSize: 5}) // small pages: the walk must page
		ctx := t.Context()
		memo := []byte("0123456789abcdef0123456789abcdef")
		to := icp.Account{Owner: payee.Principal()}
		from := icp.Account{Owner: payer.Principal()}
		idx, err := payer.Transfer(ctx, to, big.NewInt(700), memo, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 12; i++ { // later blocks, so the chain walk pages
			payer.Transfer(ctx, icp.Account{Owner: payer.Principal(), Subaccount: &[]byte{31: byte(i + 1)}}, big.NewInt(1), nil, time.Now())
		}
		want := icp.Expect{Payer: from, Payee: to, MinAmount: big.NewInt(700), Memo: memo}
		p, err := payee.VerifyPayment(ctx, idx, want)
		if err != nil || p.Amount.Int64() != 700 || p.Block != idx {
			t.Fatalf("VerifyPayment (legacy %v) = %+v, %v", legacy, p, err)
		}
		if _, err := payee.VerifyPayment(ctx, idx, want); err != nil {
			t.Errorf("second VerifyPayment (walks only the new part) = %v", err)
		}
		stranger := icp.Account{Owner: payee.Ledger()}
		mod := func(f func(*icp.Expect)) icp.Expect { w := want; f(&w); return w }
		tests := []struct {
			name  string
			block uint64
			want  icp.Expect
			err   error
		}{
			{"not on the ledger yet", 999, want, icp.ErrBlockNotFound},
			{"mint instead of transfer", 0, want, icp.ErrNotTransfer},
			{"wrong payee", idx, mod(func(w *icp.Expect) { w.Payee = stranger }), icp.ErrWrongPayee},
			{"wrong payer", idx, mod(func(w *icp.Expect) { w.Payer = stranger }), icp.ErrWrongPayer},
			{"wrong memo", idx, mod(func(w *icp.Expect) { w.Memo = []byte("other") }), icp.ErrWrongMemo},
			{"below price", idx, mod(func(w *icp.Expect) { w.MinAmount = big.NewInt(701) }), icp.ErrInsufficient},
		}
		for _, tt := range tests {
			if _, err := payee.VerifyPayment(ctx, tt.block, tt.want); !errors.Is(err, tt.err) {
				t.Errorf("VerifyPayment(%s, legacy %v) = %v, want %v", tt.name, legacy, err, tt.err)
			}
		}
	}
}

func TestVerifyPaymentThroughArchive(t *testing.T) {
	_, payer, payee := setup(t, icptest.Options{ArchiveBelow: 4})
	to, from := icp.Account{Owner: payee.Principal()}, icp.Account{Owner: payer.Principal()}
	idx, err := payer.Transfer(t.Context(), to, big.NewInt(700), []byte("m"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		payer.Transfer(t.Context(), from, big.NewInt(1), nil, time.Now())
	}
	if idx >= 4 {
		t.Fatalf("payment block %d is not below the archive boundary", idx)
	}
	p, err := payee.VerifyPayment(t.Context(), idx, icp.Expect{Payer: from, Payee: to, MinAmount: big.NewInt(700), Memo: []byte("m")})
	if err != nil || p.Block != idx {
		t.Fatalf("VerifyPayment of an archived block = %+v, %v", p, err)
	}
}

func TestVerifyPaymentRefusesForgery(t *testing.T) {
	cases := []struct {
		name    string
		breakIt func(sim *icptest.Sim, idx uint64)
		err     error
	}{
		{"block altered", func(sim *icptest.Sim, idx uint64) {
			b := sim.Ledger().Block(idx)
			tx := b.Field("tx")
			(*tx.Map)[0].Value = icp.NatValue(1_000_000) // amt
			sim.Ledger().Tamper(idx, b)
		}, icp.ErrChainBroken},
		{"foreign BLS key", func(sim *icptest.Sim, _ uint64) { sim.SignWithForeignKey() }, icp.ErrUncertified},
		{"stale certificate", func(sim *icptest.Sim, _ uint64) { sim.AgeCertificates(time.Hour) }, icp.ErrUncertified},
		{"truncated Candid reply", func(sim *icptest.Sim, _ uint64) { sim.TruncateReplies() }, icp.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim, payer, payee := setup(t, icptest.Options{})
			to, from := icp.Account{Owner: payee.Principal()}, icp.Account{Owner: payer.Principal()}
			idx, err := payer.Transfer(t.Context(), to, big.NewInt(700), []byte("m"), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			payer.Transfer(t.Context(), from, big.NewInt(1), nil, time.Now())
			tc.breakIt(sim, idx)
			if _, err := payee.VerifyPayment(t.Context(), idx, icp.Expect{Payer: from, Payee: to, MinAmount: big.NewInt(700), Memo: []byte("m")}); !errors.Is(err, tc.err) {
				t.Errorf("VerifyPayment after %s = %v, want %v", tc.name, err, tc.err)
			}
		})
	}
}

func TestMainnetRootKeyRefused(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := icp.New(icp.Config{ReplicaURL: "https://icp-api.io", LedgerID: icptest.LedgerID, FetchRootKey: true, Key: key}); err == nil {
		t.Errorf("New(mainnet, FetchRootKey) = nil error, want a refusal")
	}
}
