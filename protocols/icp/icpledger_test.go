package icp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"math/big"
	"testing"
	"time"

	pb "github.com/aviate-labs/agent-go/clients/ledger/proto/v1"
	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
	"google.golang.org/protobuf/proto"
)

// setupKind starts an emulator and two clients with the given ledger kind setting.
func setupKind(t *testing.T, opts icptest.Options, cfg icp.Config) (*icptest.Sim, *icp.Client, *icp.Client) {
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
		c := cfg
		c.ReplicaURL, c.LedgerID, c.FetchRootKey, c.Key = sim.URL(), icptest.LedgerID, true, key
		cl, err := icp.New(c)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	payer, payee := mk(), mk()
	sim.Mint(payer.Principal(), 1_000_000)
	return sim, payer, payee
}

var memo32 = []byte("0123456789abcdef0123456789abcdef")

// pay makes one payment and then `after` more transfers, returning the payment's block.
func pay(t *testing.T, payer, payee *icp.Client, after int) (uint64, icp.Expect) {
	t.Helper()
	to, from := icp.Account{Owner: payee.Principal()}, icp.Account{Owner: payer.Principal()}
	idx, err := payer.Transfer(t.Context(), to, big.NewInt(700), memo32, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < after; i++ {
		if _, err := payer.Transfer(t.Context(), icp.Account{Owner: payer.Principal(), Subaccount: &[]byte{31: byte(i + 1)}}, big.NewInt(1), nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return idx, icp.Expect{Payer: from, Payee: to, MinAmount: big.NewInt(700), Memo: memo32}
}

func TestLedgerKindDetected(t *testing.T) {
	for _, tc := range []struct {
		opts icptest.Options
		cfg  string
		want icp.LedgerKind
	}{
		{icptest.Options{ICPLedger: true}, "", icp.KindICP},
		{icptest.Options{ICPLedger: true}, "auto", icp.KindICP},
		{icptest.Options{}, "", icp.KindICRC3},
		{icptest.Options{}, "icp", icp.KindICP}, // the override wins
		{icptest.Options{ICPLedger: true}, "icrc3", icp.KindICRC3},
	} {
		_, c, _ := setupKind(t, tc.opts, icp.Config{LedgerKind: tc.cfg})
		if k, err := c.Kind(t.Context()); err != nil || k != tc.want {
			t.Errorf("Kind(ICP ledger %v, config %q) = %q, %v; want %q", tc.opts.ICPLedger, tc.cfg, k, err, tc.want)
		}
	}
	if _, err := icp.ParseLedgerKind("icrc9"); err == nil {
		t.Errorf("ParseLedgerKind(icrc9) = nil error")
	}
}

func TestICPLedgerVerifyPayment(t *testing.T) {
	for _, archive := range []uint64{0, 4} {
		sim, payer, payee := setupKind(t, icptest.Options{ICPLedger: true, PageSize: 5, ArchiveBelow: archive}, icp.Config{})
		ctx := t.Context()
		idx, want := pay(t, payer, payee, 12)
		if archive > 0 && idx >= archive {
			t.Fatalf("payment block %d is not archived", idx)
		}
		p, err := payee.VerifyPayment(ctx, idx, want)
		if err != nil || p.Block != idx || p.Amount.Int64() != 700 || string(p.Memo) != string(memo32) || p.Timestamp.IsZero() {
			t.Fatalf("VerifyPayment(archive below %d) = %+v, %v", archive, p, err)
		}
		payer.Transfer(ctx, icp.Account{Owner: payer.Principal()}, big.NewInt(1), nil, time.Now())
		if _, err := payee.VerifyPayment(ctx, idx, want); err != nil {
			t.Errorf("second VerifyPayment (walks from the known part) = %v", err)
		}
		// The encoding is the ICP ledger's protobuf Block with the 32-byte memo in icrc1_memo.
		var b pb.Block
		if err := proto.Unmarshal(sim.ICP().Encoded(idx), &b); err != nil || string(b.GetTransaction().GetIcrc1Memo().GetMemo()) != string(memo32) {
			t.Errorf("encoded block %d: icrc1_memo %q, %v", idx, b.GetTransaction().GetIcrc1Memo().GetMemo(), err)
		}
		stranger := icp.Account{Owner: payee.Ledger()}
		mod := func(f func(*icp.Expect)) icp.Expect { w := want; f(&w); return w }
		for _, tt := range []struct {
			name  string
			block uint64
			want  icp.Expect
			err   error
		}{
			{"not on the ledger yet", 999, want, icp.ErrBlockNotFound},
			{"mint instead of transfer", 0, want, icp.ErrNotTransfer},
			{"wrong payee", idx, mod(func(w *icp.Expect) { w.Payee = stranger }), icp.ErrWrongPayee},
			{"wrong payee subaccount", idx, mod(func(w *icp.Expect) { w.Payee.Subaccount = &[]byte{31: 1} }), icp.ErrWrongPayee},
			{"wrong payer", idx, mod(func(w *icp.Expect) { w.Payer = stranger }), icp.ErrWrongPayer},
			{"wrong memo", idx, mod(func(w *icp.Expect) { w.Memo = []byte("other") }), icp.ErrWrongMemo},
			{"below price", idx, mod(func(w *icp.Expect) { w.MinAmount = big.NewInt(701) }), icp.ErrInsufficient},
		} {
			if _, err := payee.VerifyPayment(ctx, tt.block, tt.want); !errors.Is(err, tt.err) {
				t.Errorf("VerifyPayment(%s, archive below %d) = %v, want %v", tt.name, archive, err, tt.err)
			}
		}
	}
}

func TestICPLedgerWalkIsBounded(t *testing.T) {
	_, payer, payee := setupKind(t, icptest.Options{ICPLedger: true}, icp.Config{MaxPaymentDepth: 3})
	idx, want := pay(t, payer, payee, 5)
	if _, err := payee.VerifyPayment(t.Context(), idx, want); !errors.Is(err, icp.ErrPaymentTooDeep) {
		t.Errorf("VerifyPayment 5 blocks behind with MaxPaymentDepth 3 = %v, want ErrPaymentTooDeep", err)
	}
}

// reencode returns block i of sim with f applied, encoded again.
func reencode(t *testing.T, sim *icptest.Sim, i uint64, f func(*pb.Block)) []byte {
	t.Helper()
	var b pb.Block
	if err := proto.Unmarshal(sim.ICP().Encoded(i), &b); err != nil {
		t.Fatal(err)
	}
	f(&b)
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestICPLedgerRefusesForgery(t *testing.T) {
	cases := []struct {
		name    string
		opts    icptest.Options
		breakIt func(t *testing.T, sim *icptest.Sim, idx uint64)
		err     error
	}{
		{"forged tip", icptest.Options{}, func(_ *testing.T, sim *icptest.Sim, _ uint64) { sim.ICP().ForgeTip(true) }, icp.ErrUncertified},
		{"foreign BLS key", icptest.Options{}, func(_ *testing.T, sim *icptest.Sim, _ uint64) { sim.SignWithForeignKey() }, icp.ErrUncertified},
		{"stale certificate", icptest.Options{}, func(_ *testing.T, sim *icptest.Sim, _ uint64) { sim.AgeCertificates(time.Hour) }, icp.ErrUncertified},
		{"payment block altered", icptest.Options{}, func(t *testing.T, sim *icptest.Sim, idx uint64) {
			sim.ICP().Serve(idx, reencode(t, sim, idx, func(b *pb.Block) { b.Transaction.GetSend().Amount.E8S = 1_000_000 }))
		}, icp.ErrChainBroken},
		{"bad parent_hash link", icptest.Options{}, func(t *testing.T, sim *icptest.Sim, idx uint64) {
			sim.ICP().Serve(idx+1, reencode(t, sim, idx+1, func(b *pb.Block) { b.ParentHash.Hash[0] ^= 1 }))
		}, icp.ErrChainBroken},
		{"parent_hash of the wrong length", icptest.Options{}, func(t *testing.T, sim *icptest.Sim, idx uint64) {
			sim.ICP().Serve(idx+1, reencode(t, sim, idx+1, func(b *pb.Block) { b.ParentHash.Hash = b.ParentHash.Hash[:31] }))
		}, icp.ErrChainBroken},
		{"truncated protobuf", icptest.Options{}, func(_ *testing.T, sim *icptest.Sim, idx uint64) {
			raw := sim.ICP().Encoded(idx)
			sim.ICP().Serve(idx, raw[:len(raw)-3])
		}, icp.ErrMalformed},
		{"truncated Candid reply", icptest.Options{}, func(_ *testing.T, sim *icptest.Sim, _ uint64) { sim.TruncateReplies() }, icp.ErrMalformed},
		{"archive callback outside the archives", icptest.Options{ArchiveBelow: 4}, func(_ *testing.T, sim *icptest.Sim, _ uint64) {
			sim.ICP().CallbackTo(principal.MustDecode("rrkah-fqaaa-aaaaa-aaaaq-cai"))
		}, icp.ErrForeignArchive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.ICPLedger = true
			sim, payer, payee := setupKind(t, opts, icp.Config{})
			if _, err := payer.Kind(t.Context()); err != nil { // detect before replies break
				t.Fatal(err)
			}
			idx, want := pay(t, payer, payee, 2)
			if _, err := payee.Kind(t.Context()); err != nil {
				t.Fatal(err)
			}
			tc.breakIt(t, sim, idx)
			if _, err := payee.VerifyPayment(t.Context(), idx, want); !errors.Is(err, tc.err) {
				t.Errorf("VerifyPayment after %s = %v, want %v", tc.name, err, tc.err)
			}
		})
	}
}
