package ledgertest

import (
	"context"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/icp"
)

func TestFakeTransfer(t *testing.T) {
	f := NewFake(1_000)
	to := icp.Account{Owner: Principal("payee")}
	at := time.Now()
	f.LoseNext(1)
	if _, err := f.Transfer(t.Context(), to, big.NewInt(100), []byte("m"), at); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Transfer with a lost reply = %v, want a deadline error", err)
	}
	if b, err := f.Transfer(t.Context(), to, big.NewInt(100), []byte("m"), at); err != nil || b != 0 || f.BlockCount() != 1 {
		t.Errorf("retried Transfer = %d, %v (%d blocks); want the first block, deduplicated", b, err, f.BlockCount())
	}
	if b, ok, err := f.FindTransfer(t.Context(), 0, icp.Sent{To: to, Amount: big.NewInt(100), Memo: []byte("m"), CreatedAt: uint64(at.UnixNano())}); err != nil || !ok || b != 0 {
		t.Errorf("FindTransfer = %d, %v, %v; want block 0", b, ok, err)
	}
	if _, err := f.Transfer(t.Context(), to, big.NewInt(10_000), nil, at); !errors.As(err, new(*icp.Shortfall)) {
		t.Errorf("Transfer beyond the balance = %v, want a shortfall", err)
	}
	if len(f.Calls()) != 3 {
		t.Errorf("Calls() = %d, want 3", len(f.Calls()))
	}
	p := f.Add(icp.Account{Owner: Principal("other")}, to, 1, nil, 0)
	if _, err := f.VerifyPayment(t.Context(), p, icp.Expect{Payee: to, Payer: icp.Account{Owner: f.Principal()}}); !errors.Is(err, icp.ErrWrongPayer) || f.Verifies() != 1 {
		t.Errorf("VerifyPayment(another payer's block) = %v, want ErrWrongPayer", err)
	}
}
