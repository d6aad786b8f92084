package icp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/aviate-labs/agent-go/candid/idl"
)

// MaxSearchBlocks bounds FindTransfer: the most blocks it reads to prove a transfer is, or is
// not, on the ledger.
const MaxSearchBlocks = 50_000

// ErrSearchTooLong is returned by FindTransfer when the range to search exceeds MaxSearchBlocks.
var ErrSearchTooLong = errors.New("too many ledger blocks to search for the transfer")

// LogLength returns the number of blocks on the ledger (uncertified: a starting point for
// FindTransfer, which certifies what it reads).
func (c *Client) LogLength(ctx context.Context) (uint64, error) {
	if k, err := c.Kind(ctx); err != nil {
		return 0, fmt.Errorf("ledger kind: %w", classify(err))
	} else if k == KindICP {
		return c.icpLogLength(ctx)
	}
	var res GetBlocksResult
	args := []GetBlocksArgs{{Start: idl.NewNat(uint64(0)), Length: idl.NewNat(uint64(0))}}
	if err := c.query(ctx, "icrc3_get_blocks", []any{args}, []any{&res}); err != nil {
		return 0, blocksErr(err)
	}
	return res.LogLength.BigInt().Uint64(), nil
}

// Sent describes a transfer this client sent: FindTransfer looks for its block.
type Sent struct {
	To        Account
	Amount    *big.Int
	Memo      []byte
	CreatedAt uint64 // created_at_time, ns
}

// FindTransfer reports whether the transfer s, sent by this client, is in a block at index from
// or later, reading the blocks from the certified tip down and checking that they chain to it: a
// "not found" answer is certified as much as a found block is. Used when a retry can no longer
// rely on the ledger's deduplication window.
func (c *Client) FindTransfer(ctx context.Context, from uint64, s Sent) (uint64, bool, error) {
	if k, err := c.Kind(ctx); err != nil {
		return 0, false, fmt.Errorf("ledger kind: %w", classify(err))
	} else if k == KindICP {
		return c.findICPTransfer(ctx, from, s)
	}
	t, err := c.certifiedTip(ctx)
	if errors.Is(err, ErrBlockNotFound) {
		return 0, false, nil // an empty ledger
	}
	if err != nil {
		return 0, false, err
	}
	if from > t.index {
		return 0, false, nil
	}
	if t.index-from+1 > MaxSearchBlocks {
		return 0, false, fmt.Errorf("%w: blocks %d to %d, the limit is %d", ErrSearchTooLong, from, t.index, MaxSearchBlocks)
	}
	me := Account{Owner: c.Principal()}
	expect := t.hash
	const page = 1000
	for hi := t.index; ; {
		lo := from
		if hi-from+1 > page {
			lo = hi - page + 1
		}
		bs, _, err := c.blocks(ctx, lo, hi)
		if err != nil {
			return 0, false, err
		}
		for i := hi; ; i-- {
			b := bs[i]
			h, err := b.Hash()
			if err != nil {
				return 0, false, fmt.Errorf("%w: block %d: %v", ErrMalformed, i, err)
			}
			if h != expect {
				return 0, false, fmt.Errorf("%w: block %d hashes to %x, expected %x", ErrChainBroken, i, h[:6], expect[:6])
			}
			if isSent(b, me, s) {
				return i, true, nil
			}
			if i == 0 {
				return 0, false, nil
			}
			ph := b.Field("phash")
			if ph == nil || ph.Blob == nil || len(*ph.Blob) != 32 {
				return 0, false, fmt.Errorf("%w: block %d has no phash", ErrChainBroken, i)
			}
			expect = [32]byte(*ph.Blob)
			if i == lo {
				break
			}
		}
		if lo == from {
			return 0, false, nil
		}
		hi = lo - 1
	}
}

// isSent reports whether block b is the transfer s from me.
func isSent(b Value, me Account, s Sent) bool {
	p, err := checkTransfer(0, b, Expect{Payer: me, Payee: s.To, MinAmount: s.Amount, Memo: s.Memo})
	if err != nil || p.Amount.Cmp(s.Amount) != 0 {
		return false
	}
	tx := b.Field("tx")
	ts := tx.Field("ts")
	if ts == nil || ts.Nat == nil || !ts.Nat.BigInt().IsUint64() || ts.Nat.BigInt().Uint64() != s.CreatedAt {
		return false
	}
	return bytes.Equal(p.Memo, s.Memo)
}
