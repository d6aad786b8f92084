package icptest

import (
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/candid/idl"
	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/protocols/icp"
)

// TestLedgerDeduplication follows ICRC-1's "Transaction deduplication": the same caller sending a
// structurally equal argument with the same created_at_time inside the window gets
// Duplicate{duplicate_of} naming the first block, and no second debit; any difference (memo,
// amount, created_at_time, caller) is a new transaction; no created_at_time, no deduplication;
// past the window the retry is TooOld.
func TestLedgerDeduplication(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLedger(10, false, 100, func() time.Time { return now })
	alice, bob := principal.MustDecode("2vxsx-fae"), principal.MustDecode("rrkah-fqaaa-aaaaa-aaaaq-cai")
	carol := icp.Account{Owner: principal.MustDecode("aaaaa-aa")}
	l.Mint(icp.Account{Owner: alice}, 1_000)
	l.Mint(icp.Account{Owner: bob}, 1_000)
	at := uint64(now.UnixNano())
	arg := func(amount uint64, memo string, created *uint64) icp.TransferArg {
		m := []byte(memo)
		return icp.TransferArg{To: carol, Amount: idl.NewNat(amount), Memo: &m, CreatedAtTime: created}
	}
	first := l.Transfer(alice, arg(100, "m", &at))
	if first.Ok == nil {
		t.Fatalf("first transfer = %+v", first.Err)
	}
	block := first.Ok.BigInt().Uint64()
	dup := l.Transfer(alice, arg(100, "m", &at))
	if dup.Err == nil || dup.Err.Duplicate == nil || dup.Err.Duplicate.DuplicateOf.BigInt().Uint64() != block {
		t.Fatalf("identical retry = %+v, want Duplicate{duplicate_of: %d}", dup, block)
	}
	if b := l.balance(icp.Account{Owner: alice}); b.Int64() != 1_000-110 {
		t.Errorf("alice's balance after a duplicate = %s, want %d (one debit)", b, 1_000-110)
	}
	later := at + 1
	for _, tt := range []struct {
		name   string
		caller principal.Principal
		arg    icp.TransferArg
	}{
		{"another memo", alice, arg(100, "n", &at)},
		{"another amount", alice, arg(101, "m", &at)},
		{"another created_at_time", alice, arg(100, "m", &later)},
		{"another caller", bob, arg(100, "m", &at)},
		{"no created_at_time", alice, arg(100, "m", nil)},
		{"no created_at_time, again", alice, arg(100, "m", nil)},
	} {
		if res := l.Transfer(tt.caller, tt.arg); res.Ok == nil {
			t.Errorf("Transfer(%s) = %+v, want a new block", tt.name, res.Err)
		}
	}
	now = now.Add(txWindow + drift + time.Second)
	if res := l.Transfer(alice, arg(100, "m", &at)); res.Err == nil || res.Err.TooOld == nil {
		t.Errorf("identical retry after the window = %+v, want TooOld", res)
	}
	l.pruneDedup(now)
	if len(l.dedup) != 0 {
		t.Errorf("dedup entries past the window = %d, want 0", len(l.dedup))
	}
}
