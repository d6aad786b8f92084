package campaign

import (
	"math/big"
	"path/filepath"
	"testing"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/node/ledger/ledgertest"
	"github.com/califusion/califusion/store"
)

type fakeLedgerService struct{ f *ledgertest.Fake }

func (l fakeLedgerService) Client() (ledger.Ledger, error) { return l.f, nil }

// TestRewardFor: the rounds service is told a reward only once it is paid (amount, block, and
// this coordinator's paying principal); an unpaid one, one for another round or trainer, or a
// node without a ledger tells none.
func TestRewardFor(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	trainer, stranger := contenttest.NewSigner(t).ID, contenttest.NewSigner(t).ID
	f := ledgertest.NewFake(1_000_000)
	s := New(Config{}, Deps{Store: st, Ledger: fakeLedgerService{f}, Accounts: accounts{trainer: ledgertest.Principal("trainer").Encode()}})
	if _, ok := s.RewardFor("r1", trainer); ok {
		t.Error("RewardFor before any payout = ok")
	}
	f.LoseNext(1) // sent, not confirmed: not told
	s.payOne(t.Context(), f, &catalog.Record{}, "r1", trainer.String(), big.NewInt(1000))
	if _, ok := s.RewardFor("r1", trainer); ok {
		t.Error("RewardFor an unconfirmed payout = ok")
	}
	p, err := s.payOne(t.Context(), f, &catalog.Record{}, "r1", trainer.String(), big.NewInt(1000))
	if err != nil || !p.Done {
		t.Fatalf("payOne = %+v, %v", p, err)
	}
	rw, ok := s.RewardFor("r1", trainer)
	if !ok || rw.Amount != "1000" || rw.Block != p.Block || rw.Payer != f.Principal().Encode() {
		t.Errorf("RewardFor(r1, trainer) = %+v, %v; want 1000 in block %d from %s", rw, ok, p.Block, f.Principal().Encode())
	}
	if _, ok := s.RewardFor("r2", trainer); ok {
		t.Error("RewardFor another round = ok")
	}
	if _, ok := s.RewardFor("r1", stranger); ok {
		t.Error("RewardFor another trainer = ok")
	}
	if _, ok := New(Config{}, Deps{Store: st}).RewardFor("r1", trainer); ok {
		t.Error("RewardFor on a node without a ledger = ok")
	}
}
