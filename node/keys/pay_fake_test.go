package keys

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/node/ledger/ledgertest"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/icp"
	keyswire "github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/store"
)

// fakePayer is a payer's keys client with a store, a peer ID (the payment memo binds it) and a
// fake ledger, and one catalog entry r priced 100 to payee.
type fakePayer struct {
	c     *Client
	self  contenttest.Signer
	st    *store.Store
	l     *ledgertest.Fake
	an    *fakeAnchoring
	r     *catalog.Record
	payee icp.Account
}

func newFakePayer(t *testing.T, balance int64) *fakePayer {
	t.Helper()
	st := newStore(t)
	self := contenttest.NewSigner(t)
	l := ledgertest.NewFake(balance)
	an := newFakeAnchoring(false)
	c := NewClient(Config{Self: self.ID}, Deps{Store: st, Keys: newKeyringOn(t, st), Ledger: newFakeLedgerSvc(l, 10), Anchoring: an, Directory: fakeDirectory(nil)})
	payee := icp.Account{Owner: ledgertest.Principal("publisher")}
	r := &catalog.Record{ID: content.ModelID{1}, Manifest: &content.Manifest{Price: "100", Payee: content.Account{Owner: payee.Owner.Encode()}}}
	return &fakePayer{c: c, self: self, st: st, l: l, an: an, r: r, payee: payee}
}

// key returns the payment record's key.
func (p *fakePayer) key() store.Key {
	return store.PaidKey(p.l.Ledger().Encode(), p.r.Lineage(), p.l.Principal().Encode())
}

// record returns the stored payment record, failing the test if there is none.
func (p *fakePayer) record(t *testing.T) store.Paid {
	t.Helper()
	var rec store.Paid
	if err := p.st.Get(p.key(), &rec); err != nil {
		t.Fatalf("read payment record: %v", err)
	}
	return rec
}

// TestFakePayOnce: Pay transfers the lineage's price to its payee with the binding memo and
// records the block; a second Pay answers already_paid without a transfer; again pays anew.
func TestFakePayOnce(t *testing.T) {
	p := newFakePayer(t, 1_000)
	res, err := p.c.Pay(t.Context(), p.r, false)
	if err != nil {
		t.Fatal(err)
	}
	calls := p.l.Calls()
	wantMemo := keyswire.Memo(p.r.Lineage(), p.self.ID)
	if len(calls) != 1 || calls[0].To.ID() != p.payee.ID() || calls[0].Amount.Int64() != 100 || string(calls[0].Memo) != string(wantMemo) {
		t.Fatalf("transfers after Pay = %+v, want one of 100 to the payee with the binding memo", calls)
	}
	if res.Block != 0 || res.AlreadyPaid || res.Ledger != p.l.Ledger().Encode() || res.Memo != hex.EncodeToString(wantMemo) || res.Amount != "100" {
		t.Errorf("Pay = %+v, want block 0 on the fake ledger, not already paid", res)
	}
	if rec := p.record(t); !rec.Done || rec.Block != 0 || rec.CreatedAt != calls[0].CreatedAt {
		t.Errorf("payment record = %+v, want done at block 0 with the transfer's created_at", rec)
	}

	again, err := p.c.Pay(t.Context(), p.r, false)
	if err != nil || !again.AlreadyPaid || again.Block != 0 || len(p.l.Calls()) != 1 {
		t.Errorf("second Pay = %+v, %v (%d transfers); want already_paid at block 0 and no transfer", again, err, len(p.l.Calls()))
	}
	anew, err := p.c.Pay(t.Context(), p.r, true)
	if err != nil || anew.AlreadyPaid || anew.Block != 1 || p.l.BlockCount() != 2 {
		t.Errorf("Pay(again) = %+v, %v; want a new payment at block 1", anew, err)
	}
}

// TestFakePayRetrySendsTheSameTransaction: a transfer whose reply was lost after the ledger
// executed it, or that timed out before reaching the ledger, is re-sent with the same created_at;
// the ledger's duplicate answer (or the first execution) is the recorded block, and the payee is
// paid once.
func TestFakePayRetrySendsTheSameTransaction(t *testing.T) {
	tests := []struct {
		name   string
		script func(*ledgertest.Fake)
		blocks int // blocks on the ledger after the failed attempt
	}{
		{"reply lost after the transfer executed", func(l *ledgertest.Fake) { l.LoseNext(1) }, 1},
		{"timed out before reaching the ledger", func(l *ledgertest.Fake) { l.FailNext(context.DeadlineExceeded) }, 0},
		{"ledger temporarily unavailable", func(l *ledgertest.Fake) {
			l.FailNext(&icp.TransferFailure{Kind: icp.ErrTemporarilyUnavailable})
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newFakePayer(t, 1_000)
			tt.script(p.l)
			if _, err := p.c.pay(t.Context(), p.r, false); apierr.CodeOf(err) != apierr.Unavailable {
				t.Fatalf("pay() = %v, want code %d", err, apierr.Unavailable)
			}
			if rec := p.record(t); rec.Done || p.l.BlockCount() != tt.blocks {
				t.Fatalf("after the failed attempt: record %+v, %d blocks; want pending, %d blocks", rec, p.l.BlockCount(), tt.blocks)
			}
			res, err := p.c.pay(t.Context(), p.r, false)
			if err != nil {
				t.Fatalf("retry pay() = %v", err)
			}
			calls := p.l.Calls()
			if len(calls) != 2 || calls[1].CreatedAt != calls[0].CreatedAt || string(calls[1].Memo) != string(calls[0].Memo) {
				t.Errorf("transfers = %+v, want the same transaction twice", calls)
			}
			if p.l.BlockCount() != 1 || res.Block != 0 || res.AlreadyPaid {
				t.Errorf("retry pay() = %+v with %d blocks, want block 0 and one transfer on the ledger", res, p.l.BlockCount())
			}
			if rec := p.record(t); !rec.Done || rec.Block != 0 {
				t.Errorf("record after the retry = %+v, want done at block 0", rec)
			}
		})
	}
}

// TestFakeResumePastTheWindow: a pending payment the ledger no longer deduplicates is searched
// for with FindTransfer: found, its block is recorded; missing but able to land, nothing is paid
// and the error names the record; certainly never landed, pay makes a new payment.
func TestFakeResumePastTheWindow(t *testing.T) {
	pending := func(p *fakePayer, age time.Duration, memo string) *store.Paid {
		at := time.Now().Add(-age)
		rec := &store.Paid{To: p.payee.Owner.Encode(), Amount: "100", Memo: []byte(memo), CreatedAt: uint64(at.UnixNano()), Model: "m", Started: at}
		if err := p.st.Put(p.key(), rec); err != nil {
			t.Fatal(err)
		}
		return rec
	}

	t.Run("landed", func(t *testing.T) {
		p := newFakePayer(t, 1_000)
		rec := pending(p, 25*time.Hour, "landed")
		p.l.Add(icp.Account{Owner: p.l.Principal()}, icp.Account{Owner: ledgertest.Principal("other")}, 5, nil, 0)
		block := p.l.Add(icp.Account{Owner: p.l.Principal()}, p.payee, 100, rec.Memo, rec.CreatedAt)
		res, err := p.c.resumePayment(t.Context(), p.l, p.key(), rec)
		if err != nil || res.Block != block {
			t.Errorf("resumePayment(landed 25 h ago) = %+v, %v; want block %d", res, err, block)
		}
		if got := p.record(t); !got.Done || got.Block != block {
			t.Errorf("record = %+v, want done at block %d", got, block)
		}
		if len(p.l.Calls()) != 0 {
			t.Errorf("resumePayment sent %d transfers for a payment that had landed", len(p.l.Calls()))
		}
	})
	t.Run("could still land", func(t *testing.T) {
		p := newFakePayer(t, 1_000)
		rec := pending(p, 24*time.Hour+time.Minute, "edge")
		_, err := p.c.resumePayment(t.Context(), p.l, p.key(), rec)
		if apierr.CodeOf(err) != apierr.Unavailable || !strings.Contains(err.Error(), "could still land") || p.l.BlockCount() != 0 {
			t.Errorf("resumePayment(missing, 24h01m old) = %v, want code %d, could still land, no transfer", err, apierr.Unavailable)
		}
		if got := p.record(t); got.Done {
			t.Errorf("record = %+v, want it still pending", got)
		}
	})
	t.Run("too old for the ledger's clock", func(t *testing.T) {
		// Inside the resubmit window by this clock, but the ledger's runs ahead: it answers
		// TooOld, and the payment is searched for instead.
		p := newFakePayer(t, 1_000)
		p.l.SetNow(func() time.Time { return time.Now().Add(30 * time.Minute) })
		rec := pending(p, 23*time.Hour+45*time.Minute, "skewed")
		_, err := p.c.resumePayment(t.Context(), p.l, p.key(), rec)
		if apierr.CodeOf(err) != apierr.Unavailable || len(p.l.Calls()) != 1 || p.l.BlockCount() != 0 {
			t.Errorf("resumePayment(TooOld) = %v after %d transfers; want code %d after one refused re-send", err, len(p.l.Calls()), apierr.Unavailable)
		}
	})
	t.Run("search fails", func(t *testing.T) {
		p := newFakePayer(t, 1_000)
		p.l.SetFindErr(errors.New("replica down"))
		rec := pending(p, 25*time.Hour, "unsearchable")
		_, err := p.c.resumePayment(t.Context(), p.l, p.key(), rec)
		if apierr.CodeOf(err) != apierr.Unavailable || !strings.Contains(err.Error(), "could not be looked up") {
			t.Errorf("resumePayment(search fails) = %v, want code %d naming the lookup", err, apierr.Unavailable)
		}
	})
	t.Run("never landed", func(t *testing.T) {
		p := newFakePayer(t, 1_000)
		rec := pending(p, 30*time.Hour, "lost")
		if _, err := p.c.resumePayment(t.Context(), p.l, p.key(), rec); !errors.Is(err, ledger.ErrNeverLanded) || p.l.BlockCount() != 0 {
			t.Fatalf("resumePayment(missing, 30 h old) = %v, want errNeverLanded and no transfer", err)
		}
		res, err := p.c.pay(t.Context(), p.r, false)
		if err != nil || res.Block != 0 || p.l.BlockCount() != 1 {
			t.Fatalf("pay() over a payment that never landed = %+v, %v; want a new payment at block 0", res, err)
		}
		if got := p.record(t); !got.Done || got.CreatedAt == rec.CreatedAt {
			t.Errorf("record = %+v, want done with a new created_at", got)
		}
	})
}

// TestFakeInsufficientFundsForgetsTheRecord: the ledger checks the balance after deduplication, so
// a refused payment never executed: its record goes, the error says what was needed, and the next
// payment starts afresh.
func TestFakeInsufficientFundsForgetsTheRecord(t *testing.T) {
	p := newFakePayer(t, 50)
	_, err := p.c.pay(t.Context(), p.r, false)
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != apierr.InsufficientFunds {
		t.Fatalf("pay() without funds = %v, want code %d", err, apierr.InsufficientFunds)
	}
	if d, ok := ae.Data.(map[string]string); !ok || d["balance"] != "50" || d["needed"] != "110" {
		t.Errorf("insufficient funds data = %#v, want balance 50 and needed 110", ae.Data)
	}
	if err := p.st.Get(p.key(), &store.Paid{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record after an insufficient-funds refusal: %v, want it gone", err)
	}
	p.l.Add(icp.Account{Owner: ledgertest.Principal("faucet")}, icp.Account{Owner: p.l.Principal()}, 1_000, nil, 0)
	res, err := p.c.pay(t.Context(), p.r, false)
	if err != nil || res.Block != 1 {
		t.Fatalf("pay() after funding = %+v, %v; want block 1", res, err)
	}
	if calls := p.l.Calls(); len(calls) != 2 || calls[1].CreatedAt == calls[0].CreatedAt {
		t.Errorf("transfers = %+v, want a fresh transaction after the refusal", calls)
	}
}
