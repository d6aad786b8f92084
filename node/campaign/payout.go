package campaign

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/internal/failpoint"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Rewards: a campaign with a reward pays each accepted contributor of each of its published
// rounds that many base units from the coordinator's account, on the ledger the trainers paid
// on, to the principal the trainer paid for the lineage from, with the memo
// SHA-256("califusion/reward/v1" ‖ round ID ‖ trainer peer ID). Each payment is recorded (synced)
// before it is sent and sent again, as the same transaction, until it is done, so a crash
// between the round and its payouts pays every contributor once (the ledger deduplicates a
// transaction with the same created_at_time within 24 hours).

// Ledger gives the coordinator's ledger client (node/ledger's Service).
type Ledger interface {
	Client() (ledger.Ledger, error)
}

// Accounts says where a trainer's rewards go (node/keys' Coordinator: the principal whose
// payment for the lineage it verified).
type Accounts interface {
	PayoutAccount(r *catalog.Record, trainer peer.ID) (string, bool)
}

// Catalog finds a round's base model (for its lineage).
type Catalog interface {
	Get(id content.ModelID) (*catalog.Record, error)
}

// Payout is one reward as stored (the key says round and trainer).
type Payout struct {
	Trainer   string `cbor:"trainer"`
	To        string `cbor:"to"`     // principal
	Amount    string `cbor:"amount"` // base units
	Memo      []byte `cbor:"memo"`
	CreatedAt int64  `cbor:"created_at"` // unix nanoseconds: the ledger's deduplication stamp
	FromBlock uint64 `cbor:"from_block"` // the ledger's length before it was sent: where to look for it
	Done      bool   `cbor:"done,omitempty"`
	Block     uint64 `cbor:"block,omitempty"`
	Error     string `cbor:"error,omitempty"` // why it could not be paid (no account on record)
}

// RewardMemo binds a reward to a round and a trainer (updates.RewardMemo, which the trainer
// checks its reward's memo against).
func RewardMemo(round string, trainer peer.ID) []byte { return updates.RewardMemo(round, trainer) }

// payouts pays (or resumes paying) the reward for each accepted contributor of e, and records the
// payouts in e. It returns an error only when the ledger cannot be used (the campaign retries).
func (s *Service) payouts(ctx context.Context, rec *Record, e *RoundEntry, contributors []string) error {
	amount, ok := new(big.Int).SetString(rec.Params.Reward, 10)
	if !ok || amount.Sign() <= 0 || s.ledger == nil {
		return nil
	}
	lc, err := s.ledger.Client()
	if err != nil {
		return err
	}
	raw, err := hex.DecodeString(e.BaseModel)
	if err != nil || len(raw) != 32 {
		return fmt.Errorf("the round's base model %q is not a model ID", e.BaseModel)
	}
	base, err := s.catalog.Get(content.ModelID(raw))
	if err != nil {
		return fmt.Errorf("the round's base model: %w", err)
	}
	e.Payouts = e.Payouts[:0]
	for _, t := range contributors {
		p, err := s.payOne(ctx, lc, base, e.RoundID, t, amount)
		if err != nil {
			return err
		}
		e.Payouts = append(e.Payouts, *p)
	}
	e.PaidOut = true
	return nil
}

// payOne pays trainer's reward for round once.
func (s *Service) payOne(ctx context.Context, lc ledger.Ledger, base *catalog.Record, round, trainer string, amount *big.Int) (*Payout, error) {
	key := store.PayoutKey(round, trainer)
	var p Payout
	err := s.store.Get(key, &p)
	switch {
	case err == nil && (p.Done || p.Error != ""):
		return &p, nil
	case err == nil: // recorded, maybe sent: send the same transaction again
	case errors.Is(err, store.ErrNotFound):
		id, err := peer.Decode(trainer)
		if err != nil {
			return nil, fmt.Errorf("contributor %q: %w", trainer, err)
		}
		from, err := lc.LogLength(ctx)
		if err != nil {
			return nil, ledger.Err(err)
		}
		p = Payout{Trainer: trainer, Amount: amount.String(), Memo: RewardMemo(round, id), CreatedAt: s.cfg.Now().UnixNano(), FromBlock: from}
		to, ok := s.accounts.PayoutAccount(base, id)
		if !ok {
			p.Error = "no paying account of the trainer is on record here (it did not pay this coordinator for the lineage)"
		}
		p.To = to
		if err := s.store.PutSync(key, &p); err != nil {
			return nil, fmt.Errorf("record the reward before paying it: %w", err)
		}
		if p.Error != "" {
			s.log.Warn("reward not paid", "round", round, "peer", trainer, "why", p.Error)
			return &p, nil
		}
	default:
		return nil, err
	}
	to, err := principal.Decode(p.To)
	if err != nil {
		return nil, fmt.Errorf("reward record: payee %q: %w", p.To, err)
	}
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	block, err := ledger.Resend(tctx, lc, icp.Sent{To: icp.Account{Owner: to}, Amount: amount, Memo: p.Memo, CreatedAt: uint64(p.CreatedAt)}, p.FromBlock, s.cfg.Now())
	switch {
	case errors.Is(err, ledger.ErrNeverLanded):
		// Certainly not on the ledger and can no longer land: pay it afresh.
		s.log.Warn("a recorded reward never reached the ledger: paying it afresh", "round", round, "peer", trainer)
		if derr := s.store.Delete(key); derr != nil {
			return nil, derr
		}
		return s.payOne(ctx, lc, base, round, trainer, amount)
	case errors.Is(err, ledger.ErrMayLand):
		return nil, fmt.Errorf("reward for %s in round %s is not on the ledger but could still land: retrying later", trainer, round)
	case errors.Is(err, ledger.ErrLookup):
		return nil, err
	case err != nil:
		return nil, ledger.Err(err)
	}
	failpoint.Crash("reward-sent") // tests kill the coordinator here: paid, not yet recorded
	p.Done, p.Block = true, block
	if err := s.store.PutSync(key, &p); err != nil {
		return nil, err
	}
	s.log.Info("reward paid", "round", round, "peer", trainer, "amount", p.Amount, "block", block)
	return &p, nil
}
