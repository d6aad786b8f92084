package ledger_test

import (
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/node/ledger/ledgertest"
	"github.com/califusion/califusion/protocols/icp"
)

// Resend pays a recorded transfer once: re-sent as the same transaction inside the ledger's
// deduplication window (a lost answer does not make a second block), found on the ledger after
// it, "may still land" while it could, and "never landed" once it cannot.
func TestResendSettlesOnce(t *testing.T) {
	now := time.Now()
	f := ledgertest.NewFake(1_000_000)
	f.SetNow(func() time.Time { return now })
	ctx := t.Context()
	to := icp.Account{Owner: ledgertest.Principal("payee")}
	s := icp.Sent{To: to, Amount: big.NewInt(1000), Memo: []byte("memo-1"), CreatedAt: uint64(now.UnixNano())}

	f.LoseNext(1)
	if _, err := ledger.Resend(ctx, f, s, 0, now); err == nil {
		t.Fatal("a lost answer was taken for a transfer")
	}
	block, err := ledger.Resend(ctx, f, s, 0, now.Add(time.Minute))
	if err != nil || f.BlockCount() != 1 {
		t.Fatalf("resend within the window = block %d, %v with %d blocks; want the one block", block, err, f.BlockCount())
	}
	// A day later: not re-sent, looked up.
	later := now.Add(25 * time.Hour)
	f.SetNow(func() time.Time { return later })
	if got, err := ledger.Resend(ctx, f, s, 0, later); err != nil || got != block || f.BlockCount() != 1 {
		t.Fatalf("after the window = block %d, %v (%d blocks); want it found at %d", got, err, f.BlockCount(), block)
	}
	// One that never reached the ledger: may land until the landing window ends, then never.
	missing := icp.Sent{To: to, Amount: big.NewInt(1000), Memo: []byte("memo-2"), CreatedAt: uint64(now.Add(-time.Hour).UnixNano())}
	if _, err := ledger.Resend(ctx, f, missing, 0, now.Add(23*time.Hour+5*time.Minute)); !errors.Is(err, ledger.ErrMayLand) || f.BlockCount() != 1 {
		t.Errorf("missing, inside the landing window = %v (%d blocks), want ErrMayLand and no transfer", err, f.BlockCount())
	}
	if _, err := ledger.Resend(ctx, f, missing, 0, now.Add(26*time.Hour)); !errors.Is(err, ledger.ErrNeverLanded) || f.BlockCount() != 1 {
		t.Errorf("missing, past the landing window = %v (%d blocks), want ErrNeverLanded and no transfer", err, f.BlockCount())
	}
}
