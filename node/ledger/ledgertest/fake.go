// Package ledgertest provides Fake, a hand-written in-memory ledger.Ledger, so payment logic runs
// in tests without an emulated replica.
package ledgertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/protocols/icp"
)

// Fake is a hand-written Ledger: an in-memory ICRC-1 ledger seen from one paying account
// (Principal). Transfers follow the ledger's rules in its order (too old or in the future, then
// duplicate, then balance), and the test scripts the failures a real replica produces: a refusal
// or a timeout before the transfer executes (FailNext), and a reply lost after it executed
// (LoseNext). VerifyPayment checks the recorded blocks as the real client checks a certified
// block, unless SetVerifyErr forces an answer.
type Fake struct {
	me, id principal.Principal
	fee    *big.Int
	tok    icp.Token
	kind   icp.LedgerKind

	mu        sync.Mutex
	now       func() time.Time // the ledger's clock; time.Now when nil
	balances  map[icp.AccountID]*big.Int
	blocks    []Block
	transfers []Call  // every Transfer call, in order, as the ledger received it
	failNext  []error // returned by the next Transfer calls before anything executes
	loseNext  int     // the next Transfer calls execute, then their reply is lost
	findErr   error   // returned by FindTransfer when set
	verifyErr error   // returned by VerifyPayment when set
	verifies  int     // VerifyPayment calls
}

// Block is one executed transfer.
type Block struct {
	From, To  icp.Account
	Amount    *big.Int
	Memo      []byte
	CreatedAt uint64 // ns, 0 when the transfer had none
	At        time.Time
}

// Call is one Transfer call's arguments.
type Call struct {
	To        icp.Account
	Amount    *big.Int
	Memo      []byte
	CreatedAt uint64
}

// ICRC-1's deduplication window and permitted clock drift.
const (
	txWindow = 24 * time.Hour
	drift    = 2 * time.Minute
)

var _ ledger.Ledger = (*Fake)(nil)

// NewFake returns a fake ledger whose paying account (Principal("payer")) holds balance base
// units; the ledger's ID is Principal("ledger"), its fee 10, its token "TST" with 8 decimals, its
// kind ICRC-3.
func NewFake(balance int64) *Fake {
	f := &Fake{
		me: Principal("payer"), id: Principal("ledger"), fee: big.NewInt(10),
		kind: icp.KindICRC3, balances: map[icp.AccountID]*big.Int{},
	}
	f.tok = icp.Token{Symbol: "TST", Decimals: 8, Fee: f.fee}
	f.balances[icp.Account{Owner: f.me}.ID()] = big.NewInt(balance)
	return f
}

// Principal derives a self-authenticating-looking principal from a name.
func Principal(name string) principal.Principal {
	h := sha256.Sum256([]byte(name))
	return principal.Principal{Raw: append(h[:28:28], 0x02)}
}

// SetNow sets the ledger's clock (nil: time.Now).
func (f *Fake) SetNow(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// FailNext makes the next len(errs) Transfer calls fail, in order, before anything executes: an
// *icp.TransferFailure is returned as the ledger's answer, any other error as a failed call.
func (f *Fake) FailNext(errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = append([]error(nil), errs...)
}

// LoseNext makes the next n Transfer calls execute, then lose their reply (a deadline error).
func (f *Fake) LoseNext(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loseNext = n
}

// SetFindErr makes FindTransfer return err (nil: search normally).
func (f *Fake) SetFindErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.findErr = err
}

// SetVerifyErr makes VerifyPayment return err (nil: verify normally).
func (f *Fake) SetVerifyErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verifyErr = err
}

// Verifies returns how many VerifyPayment calls the ledger received.
func (f *Fake) Verifies() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.verifies
}

func (f *Fake) clock() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

func (f *Fake) balanceLocked(a icp.Account) *big.Int {
	b, ok := f.balances[a.ID()]
	if !ok {
		b = new(big.Int)
		f.balances[a.ID()] = b
	}
	return b
}

// appendLocked executes a transfer from from and returns its block.
func (f *Fake) appendLocked(from, to icp.Account, amount *big.Int, memo []byte, createdAt uint64) uint64 {
	f.balanceLocked(from).Sub(f.balanceLocked(from), new(big.Int).Add(amount, f.fee))
	f.balanceLocked(to).Add(f.balanceLocked(to), amount)
	f.blocks = append(f.blocks, Block{From: from, To: to, Amount: new(big.Int).Set(amount), Memo: bytes.Clone(memo), CreatedAt: createdAt, At: f.clock()})
	return uint64(len(f.blocks) - 1)
}

// Add puts a transfer by anyone on the ledger (another payer's, or one that landed while the
// payer was down) without balance checks, and returns its block.
func (f *Fake) Add(from, to icp.Account, amount int64, memo []byte, createdAt uint64) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.balanceLocked(from).Add(f.balanceLocked(from), big.NewInt(amount+f.fee.Int64()))
	return f.appendLocked(from, to, big.NewInt(amount), memo, createdAt)
}

// BlockCount returns how many blocks the ledger holds.
func (f *Fake) BlockCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.blocks)
}

// Calls returns a copy of the Transfer calls received.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.transfers...)
}

// Principal is the paying account's owner, Principal("payer").
func (f *Fake) Principal() principal.Principal { return f.me }

// Ledger is the fake ledger's ID, Principal("ledger").
func (f *Fake) Ledger() principal.Principal { return f.id }

// Transfer executes a transfer from the paying account, as the ICRC-1 ledger would.
func (f *Fake) Transfer(ctx context.Context, to icp.Account, amount *big.Int, memo []byte, createdAt time.Time) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := uint64(createdAt.UnixNano())
	f.transfers = append(f.transfers, Call{To: to, Amount: new(big.Int).Set(amount), Memo: bytes.Clone(memo), CreatedAt: ts})
	if len(f.failNext) > 0 {
		err := f.failNext[0]
		f.failNext = f.failNext[1:]
		var refusal *icp.TransferFailure
		if errors.As(err, &refusal) {
			return 0, err // the ledger's answer, as the client returns it
		}
		return 0, fmt.Errorf("icp: icrc1_transfer: %w", err) // the call itself failed
	}
	now := f.clock()
	switch {
	case createdAt.Before(now.Add(-txWindow - drift)):
		return 0, &icp.TransferFailure{Kind: icp.ErrTooOld}
	case createdAt.After(now.Add(drift)):
		return 0, &icp.TransferFailure{Kind: icp.ErrCreatedInFuture}
	}
	me := icp.Account{Owner: f.me}
	for i, b := range f.blocks {
		if b.CreatedAt == ts && b.From.ID() == me.ID() && b.To.ID() == to.ID() && b.Amount.Cmp(amount) == 0 && bytes.Equal(b.Memo, memo) {
			return uint64(i), nil // Duplicate: the client answers with the first transfer's block
		}
	}
	if bal := f.balanceLocked(me); bal.Cmp(new(big.Int).Add(amount, f.fee)) < 0 {
		fail := &icp.TransferFailure{Kind: icp.ErrInsufficientFunds, Balance: new(big.Int).Set(bal)}
		return 0, &icp.Shortfall{Failure: fail, Balance: fail.Balance, Amount: new(big.Int).Set(amount), Fee: f.fee, Token: f.tok}
	}
	idx := f.appendLocked(me, to, amount, memo, ts)
	if f.loseNext > 0 {
		f.loseNext--
		return 0, fmt.Errorf("icp: icrc1_transfer: %w", context.DeadlineExceeded)
	}
	return idx, nil
}

// LogLength is the number of blocks.
func (f *Fake) LogLength(ctx context.Context) (uint64, error) {
	return uint64(f.BlockCount()), ctx.Err()
}

// FindTransfer looks for s among the blocks from from on, sent by the paying account.
func (f *Fake) FindTransfer(ctx context.Context, from uint64, s icp.Sent) (uint64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.findErr != nil {
		return 0, false, f.findErr
	}
	me := icp.Account{Owner: f.me}.ID()
	for i := from; i < uint64(len(f.blocks)); i++ {
		b := f.blocks[i]
		if b.From.ID() == me && b.To.ID() == s.To.ID() && b.Amount.Cmp(s.Amount) == 0 && bytes.Equal(b.Memo, s.Memo) && b.CreatedAt == s.CreatedAt {
			return i, true, nil
		}
	}
	return 0, false, nil
}

// VerifyPayment checks block against want as the real client checks a certified block.
func (f *Fake) VerifyPayment(ctx context.Context, block uint64, want icp.Expect) (*icp.Payment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verifies++
	if f.verifyErr != nil {
		return nil, f.verifyErr
	}
	if block >= uint64(len(f.blocks)) {
		return nil, fmt.Errorf("%w: block %d, certified tip %d", icp.ErrBlockNotFound, block, len(f.blocks)-1)
	}
	b := f.blocks[block]
	switch {
	case b.To.ID() != want.Payee.ID():
		return nil, fmt.Errorf("%w: block %d", icp.ErrWrongPayee, block)
	case b.From.ID() != want.Payer.ID():
		return nil, fmt.Errorf("%w: block %d", icp.ErrWrongPayer, block)
	case !bytes.Equal(b.Memo, want.Memo):
		return nil, fmt.Errorf("%w: block %d", icp.ErrWrongMemo, block)
	case want.MinAmount != nil && b.Amount.Cmp(want.MinAmount) < 0:
		return nil, fmt.Errorf("%w: block %d pays %s, the price is %s", icp.ErrInsufficient, block, b.Amount, want.MinAmount)
	}
	return &icp.Payment{Block: block, Amount: new(big.Int).Set(b.Amount), Memo: bytes.Clone(b.Memo), Timestamp: b.At}, nil
}

// Balance is a's balance in base units.
func (f *Fake) Balance(ctx context.Context, a icp.Account) (*big.Int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return new(big.Int).Set(f.balanceLocked(a)), ctx.Err()
}

// Token returns the fake token: "TST", 8 decimals, fee 10.
func (f *Fake) Token(ctx context.Context) (icp.Token, error) { return f.tok, ctx.Err() }

// CachedToken returns the fake token, always known.
func (f *Fake) CachedToken() (icp.Token, bool) { return f.tok, true }

// Kind returns ICRC-3.
func (f *Fake) Kind(ctx context.Context) (icp.LedgerKind, error) {
	return f.kind, ctx.Err()
}

// KnownKind returns ICRC-3.
func (f *Fake) KnownKind() icp.LedgerKind { return f.kind }
