package campaign

import (
	"errors"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/ledger/ledgertest"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

type accounts map[peer.ID]string

func (a accounts) PayoutAccount(_ *catalog.Record, p peer.ID) (string, bool) {
	to, ok := a[p]
	return to, ok
}

// A reward whose transfer was sent but not confirmed is settled once: re-sent as the same
// transaction inside the ledger's deduplication window, found on the ledger after it, and paid
// afresh only once it can no longer land. A trainer with no paying account on record is
// recorded as unpaid, with why.
func TestRewardSettledOnce(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	trainer, stranger := contenttest.NewSigner(t).ID, contenttest.NewSigner(t).ID
	now := time.Now()
	clock := func() time.Time { return now }
	s := New(Config{Now: clock}, Deps{Store: st, Accounts: accounts{trainer: ledgertest.Principal("trainer").Encode()}})
	f := ledgertest.NewFake(1_000_000)
	f.SetNow(clock)
	base := &catalog.Record{}
	amount := big.NewInt(1000)
	ctx := t.Context()

	// Sent, its answer lost (a crash or a timeout): not done.
	f.LoseNext(1)
	if _, err := s.payOne(ctx, f, base, "r1", trainer.String(), amount); err == nil {
		t.Fatal("a lost answer was taken for a payment")
	}
	// Within the window: the same transaction again, no second block.
	p, err := s.payOne(ctx, f, base, "r1", trainer.String(), amount)
	if err != nil || !p.Done || f.BlockCount() != 1 {
		t.Fatalf("resend = %+v, %v with %d blocks; want done on the one block", p, err, f.BlockCount())
	}

	// Sent, answer lost, and the coordinator back a day later: found on the ledger.
	f.LoseNext(1)
	s.payOne(ctx, f, base, "r2", trainer.String(), amount)
	now = now.Add(25 * time.Hour)
	p, err = s.payOne(ctx, f, base, "r2", trainer.String(), amount)
	if err != nil || !p.Done || p.Block != 1 || f.BlockCount() != 2 {
		t.Fatalf("settle after the window = %+v, %v with %d blocks; want done on block 1 of 2", p, err, f.BlockCount())
	}

	// Never reached the ledger, back after it could have landed: paid afresh, once.
	f.FailNext(errors.New("connection refused"))
	s.payOne(ctx, f, base, "r3", trainer.String(), amount)
	now = now.Add(25*time.Hour + 10*time.Minute)
	p, err = s.payOne(ctx, f, base, "r3", trainer.String(), amount)
	if err != nil || !p.Done || f.BlockCount() != 3 {
		t.Fatalf("a reward that never landed = %+v, %v with %d blocks; want paid afresh once", p, err, f.BlockCount())
	}

	p, err = s.payOne(ctx, f, base, "r3", stranger.String(), amount)
	if err != nil || p.Done || p.Error == "" || f.BlockCount() != 3 {
		t.Fatalf("a trainer with no account on record = %+v, %v; want unpaid with why", p, err)
	}
}
