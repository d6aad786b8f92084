package icp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

// counted serves sim through a handler that counts requests and reply bytes, so a test can see
// what one verification cost.
type counted struct {
	requests, bytes atomic.Int64
	url             string             // the counting server
	key             ed25519.PrivateKey // the verifier's key, for fresh clients
}

func (c *counted) reset() { c.requests.Store(0); c.bytes.Store(0) }

type countingWriter struct {
	http.ResponseWriter
	c *counted
}

func (w countingWriter) Write(b []byte) (int, error) {
	w.c.bytes.Add(int64(len(b)))
	return w.ResponseWriter.Write(b)
}

// countedSetup is setup behind a counting server; cfg adjusts the payee's (verifier's) client.
func countedSetup(t testing.TB, opts icptest.Options, cfg func(*icp.Config)) (*icptest.Sim, *counted, *icp.Client, *icp.Client) {
	t.Helper()
	sim, err := icptest.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	cnt := &counted{}
	h := sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cnt.requests.Add(1)
		h.ServeHTTP(countingWriter{w, cnt}, r)
	}))
	t.Cleanup(srv.Close)
	cnt.url = srv.URL
	mk := func(f func(*icp.Config)) *icp.Client {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		cnt.key = key
		// The ledger kind is given: detecting it (a query or two, once per client) is not what
		// these tests count.
		c := icp.Config{ReplicaURL: srv.URL, LedgerID: icptest.LedgerID, FetchRootKey: true, Key: key, LedgerKind: string(icp.KindICRC3)}
		if f != nil {
			f(&c)
		}
		cl, err := icp.New(c)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	payer, payee := mk(nil), mk(cfg)
	sim.Mint(payer.Principal(), 1_000_000)
	return sim, cnt, payer, payee
}

// TestVerifyChecksTheBlockFirst: a claim naming a block that is not the expected payment (wrong
// memo, another payer, a mint) far behind the tip is refused after fetching that one block: no
// tip certificate, no walk over the 3,000 blocks above it.
func TestVerifyChecksTheBlockFirst(t *testing.T) {
	sim, cnt, payer, payee := countedSetup(t, icptest.Options{}, nil)
	ctx := t.Context()
	to, from := icp.Account{Owner: payee.Principal()}, icp.Account{Owner: payer.Principal()}
	memo := []byte("0123456789abcdef0123456789abcdef")
	idx, err := payer.Transfer(ctx, to, big.NewInt(700), memo, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3000; i++ {
		sim.Mint(payee.Principal(), 1)
	}
	want := icp.Expect{Payer: from, Payee: to, MinAmount: big.NewInt(700), Memo: memo}
	mod := func(f func(*icp.Expect)) icp.Expect { w := want; f(&w); return w }
	stranger := icp.Account{Owner: payee.Ledger()}
	for _, tt := range []struct {
		name  string
		block uint64
		want  icp.Expect
		err   error
	}{
		{"wrong memo", idx, mod(func(w *icp.Expect) { w.Memo = []byte("other") }), icp.ErrWrongMemo},
		{"another payer's block", idx, mod(func(w *icp.Expect) { w.Payer = stranger }), icp.ErrWrongPayer},
		{"block 0 (a mint)", 0, want, icp.ErrNotTransfer},
		{"below the price", idx, mod(func(w *icp.Expect) { w.MinAmount = big.NewInt(701) }), icp.ErrInsufficient},
		{"beyond the tip", 1 << 40, want, icp.ErrBlockNotFound},
	} {
		cnt.reset()
		if _, err := payee.VerifyPayment(ctx, tt.block, tt.want); !errors.Is(err, tt.err) {
			t.Errorf("VerifyPayment(%s) = %v, want %v", tt.name, err, tt.err)
		}
		// One verified query: the query itself and agent-go's read_state for the node key.
		if r, b := cnt.requests.Load(), cnt.bytes.Load(); r > 2 || b > 8<<10 {
			t.Errorf("refusing %s took %d requests and %d reply bytes, want at most 2 and 8 KiB", tt.name, r, b)
		}
	}
	// The genuine payment still verifies (walking the 3,000 blocks once).
	if _, err := payee.VerifyPayment(ctx, idx, want); err != nil {
		t.Errorf("VerifyPayment(genuine) = %v", err)
	}
}

// TestVerifyAgeAndDepth: a payment older than MaxPaymentAge or deeper than MaxPaymentDepth behind
// the tip is refused, before the walk.
func TestVerifyAgeAndDepth(t *testing.T) {
	later := func() time.Time { return time.Now().Add(721 * time.Hour) }
	for _, tt := range []struct {
		name string
		cfg  func(*icp.Config)
		err  error
	}{
		{"default window, a month later", func(c *icp.Config) { c.Clock = later }, icp.ErrPaymentTooOld},
		{"one-hour window, a month later", func(c *icp.Config) { c.Clock = later; c.MaxPaymentAge = time.Hour }, icp.ErrPaymentTooOld},
		{"depth 5, 10 blocks behind", func(c *icp.Config) { c.MaxPaymentDepth = 5 }, icp.ErrPaymentTooDeep},
		{"depth 10, 10 blocks behind", func(c *icp.Config) { c.MaxPaymentDepth = 10 }, nil},
		{"defaults, now", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sim, cnt, payer, payee := countedSetup(t, icptest.Options{}, tt.cfg)
			to, from := icp.Account{Owner: payee.Principal()}, icp.Account{Owner: payer.Principal()}
			idx, err := payer.Transfer(t.Context(), to, big.NewInt(700), []byte("m"), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 10; i++ {
				sim.Mint(payee.Principal(), 1)
			}
			cnt.reset()
			_, err = payee.VerifyPayment(t.Context(), idx, icp.Expect{Payer: from, Payee: to, MinAmount: big.NewInt(700), Memo: []byte("m")})
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Errorf("VerifyPayment = %v, want %v", err, tt.err)
			}
			if r := cnt.requests.Load(); tt.err != nil && r > 2 {
				t.Errorf("the refusal took %d requests, want at most 2 (no tip, no walk)", r)
			}
		})
	}
}

// TestVerifyWalkBound: with MaxVerifyBlocks 10, a payment 35 blocks behind the tip needs four
// requests; each fetches at most 10 blocks of the walk and the last one accepts it. A block
// altered below the first window is still caught.
func TestVerifyWalkBound(t *testing.T) {
	sim, cnt, payer, payee := countedSetup(t, icptest.Options{PageSize: 5}, func(c *icp.Config) { c.MaxVerifyBlocks = 10 })
	ctx := t.Context()
	to, from := icp.Account{Owner: payee.Principal()}, icp.Account{Owner: payer.Principal()}
	idx, err := payer.Transfer(ctx, to, big.NewInt(700), []byte("m"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 35; i++ {
		sim.Mint(payee.Principal(), 1)
	}
	want := icp.Expect{Payer: from, Payee: to, MinAmount: big.NewInt(700), Memo: []byte("m")}
	for attempt := 1; attempt <= 4; attempt++ {
		cnt.reset()
		_, err := payee.VerifyPayment(ctx, idx, want)
		if attempt < 4 && !errors.Is(err, icp.ErrWalkLimit) {
			t.Fatalf("VerifyPayment attempt %d = %v, want %v", attempt, err, icp.ErrWalkLimit)
		}
		if attempt == 4 && err != nil {
			t.Fatalf("VerifyPayment attempt 4 = %v, want the payment", err)
		}
		// First block, tip, at most two 5-block pages: four verified queries, two requests each.
		if r := cnt.requests.Load(); r > 8 {
			t.Errorf("VerifyPayment attempt %d took %d requests, want at most 8", attempt, r)
		}
	}

	// A lying replica alters a block deep in the walk of a second payment: the bounded walk still
	// refuses it when it gets there.
	sim2, _, payer2, payee2 := countedSetup(t, icptest.Options{}, func(c *icp.Config) { c.MaxVerifyBlocks = 10 })
	to2, from2 := icp.Account{Owner: payee2.Principal()}, icp.Account{Owner: payer2.Principal()}
	idx2, err := payer2.Transfer(ctx, to2, big.NewInt(700), []byte("m"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 25; i++ {
		sim2.Mint(payee2.Principal(), 1)
	}
	b := sim2.Ledger().Block(idx2 + 3)
	(*b.Field("tx").Map)[0].Value = icp.NatValue(5)
	sim2.Ledger().Tamper(idx2+3, b)
	want2 := icp.Expect{Payer: from2, Payee: to2, MinAmount: big.NewInt(700), Memo: []byte("m")}
	for attempt := 1; ; attempt++ {
		_, err := payee2.VerifyPayment(ctx, idx2, want2)
		if errors.Is(err, icp.ErrWalkLimit) && attempt < 5 {
			continue
		}
		if !errors.Is(err, icp.ErrChainBroken) {
			t.Errorf("VerifyPayment over an altered block (attempt %d) = %v, want %v", attempt, err, icp.ErrChainBroken)
		}
		break
	}
}
