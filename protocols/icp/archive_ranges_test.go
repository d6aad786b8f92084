package icp_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

// TestArchiveRangesPerReplyBounded: a ledger reply listing its archived range many times (each
// listing is an archive query) or more ranges than blocks asked is refused as malformed, on both
// ledger kinds; the honest reply (one range) still verifies.
func TestArchiveRangesPerReplyBounded(t *testing.T) {
	for _, kind := range []icp.LedgerKind{icp.KindICRC3, icp.KindICP} {
		for _, repeat := range []int{1, 2, 1000} {
			t.Run(fmt.Sprintf("%s/%d", kind, repeat), func(t *testing.T) {
				sim, payer, payee := setupKind(t, icptest.Options{ICPLedger: kind == icp.KindICP, ArchiveBelow: 4}, icp.Config{LedgerKind: string(kind)})
				idx, want := pay(t, payer, payee, 8)
				if idx >= 4 {
					t.Fatalf("payment block %d is not archived", idx)
				}
				sim.RepeatArchived(repeat)
				_, err := payee.VerifyPayment(t.Context(), idx, want)
				if repeat == 1 {
					if err != nil {
						t.Errorf("VerifyPayment(archive range listed once) = %v, want nil", err)
					}
					return
				}
				if !errors.Is(err, icp.ErrMalformed) {
					t.Errorf("VerifyPayment(archive range listed %d times) = %v, want ErrMalformed", repeat, err)
				}
			})
		}
	}
}
