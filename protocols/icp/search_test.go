package icp_test

import (
	"math/big"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

// TestFindTransfer: a payer finds its own transfer by its exact arguments among later blocks
// (paging, chained to the certified tip); a transfer never sent, or sent before from, is not found.
func TestFindTransfer(t *testing.T) {
	t.Run("icrc3", func(t *testing.T) {
		sim, payer, payee := setup(t, icptest.Options{PageSize: 7})
		testFindTransfer(t, sim, payer, payee)
	})
	t.Run("icp", func(t *testing.T) {
		sim, payer, payee := setupKind(t, icptest.Options{ICPLedger: true, PageSize: 7, ArchiveBelow: 3}, icp.Config{})
		testFindTransfer(t, sim, payer, payee)
	})
}

func testFindTransfer(t *testing.T, sim *icptest.Sim, payer, payee *icp.Client) {
	ctx := t.Context()
	from, err := payer.LogLength(ctx)
	if err != nil {
		t.Fatal(err)
	}
	to := icp.Account{Owner: payee.Principal()}
	at := time.Now()
	idx, err := payer.Transfer(ctx, to, big.NewInt(700), []byte("m"), at)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		sim.Mint(payee.Principal(), 1)
	}
	sent := icp.Sent{To: to, Amount: big.NewInt(700), Memo: []byte("m"), CreatedAt: uint64(at.UnixNano())}
	if got, ok, err := payer.FindTransfer(ctx, from, sent); err != nil || !ok || got != idx {
		t.Errorf("FindTransfer(sent) = %d, %v, %v; want %d, true", got, ok, err, idx)
	}
	other := sent
	other.CreatedAt++
	if _, ok, err := payer.FindTransfer(ctx, from, other); err != nil || ok {
		t.Errorf("FindTransfer(never sent) = %v, %v; want not found", ok, err)
	}
	if _, ok, err := payer.FindTransfer(ctx, idx+1, sent); err != nil || ok {
		t.Errorf("FindTransfer(from after the block) = %v, %v; want not found", ok, err)
	}
	if _, ok, err := payee.FindTransfer(ctx, from, sent); err != nil || ok {
		t.Errorf("FindTransfer by another sender = %v, %v; want not found", ok, err)
	}
}
