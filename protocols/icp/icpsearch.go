package icp

import (
	"context"
	"crypto/sha256"
	"fmt"

	pb "github.com/aviate-labs/agent-go/clients/ledger/proto/v1"
)

// icpLogLength is LogLength on the ICP ledger: its chain length (uncertified).
func (c *Client) icpLogLength(ctx context.Context) (uint64, error) {
	res, err := c.queryEncoded(ctx, 0, 0)
	if err != nil {
		return 0, err
	}
	return res.ChainLength, nil
}

// findICPTransfer is FindTransfer on the ICP ledger: blocks from..tip are fetched (archives
// included), the tip is checked against the ledger's certified data, and the parent_hash chain
// is followed down from it, so a "not found" is as certified as a found block.
func (c *Client) findICPTransfer(ctx context.Context, from uint64, s Sent) (uint64, bool, error) {
	first, err := c.queryEncoded(ctx, 0, 0)
	if err != nil {
		return 0, false, err
	}
	if first.ChainLength == 0 || from >= first.ChainLength {
		return 0, false, nil
	}
	tip := first.ChainLength - 1
	raw := map[uint64][]byte{}
	res := first
	for next := from; next <= tip; {
		if tip-from+1 > MaxSearchBlocks {
			return 0, false, fmt.Errorf("%w: blocks %d to %d, the limit is %d", ErrSearchTooLong, from, tip, MaxSearchBlocks)
		}
		if res, err = c.icpBlocks(ctx, next, tip, raw); err != nil {
			return 0, false, err
		}
		next = tip + 1
		if res.ChainLength > 0 && res.ChainLength-1 > tip {
			tip = res.ChainLength - 1 // the ledger grew meanwhile: follow it to the answer's tip
		}
	}
	if res.ChainLength != tip+1 {
		return 0, false, fmt.Errorf("%w: chain length went from %d to %d", ErrChainBroken, tip+1, res.ChainLength)
	}
	tipRaw, ok := raw[tip]
	if !ok {
		return 0, false, fmt.Errorf("%w: the ledger did not return its tip block %d", ErrChainBroken, tip)
	}
	expect := sha256.Sum256(tipRaw)
	if err := c.verifyICPTip(res, expect); err != nil {
		return 0, false, err
	}
	me := Account{Owner: c.Principal()}
	for i := tip; ; i-- {
		enc, ok := raw[i]
		if !ok {
			return 0, false, fmt.Errorf("%w: the ledger did not return block %d", ErrChainBroken, i)
		}
		b, h, err := DecodeICPBlock(enc)
		if err != nil {
			return 0, false, fmt.Errorf("block %d: %w", i, err)
		}
		if h != expect {
			return 0, false, fmt.Errorf("%w: block %d hashes to %x, its successor names %x", ErrChainBroken, i, h[:6], expect[:6])
		}
		if isSentICP(i, b, me, s) {
			return i, true, nil
		}
		if i == from {
			return 0, false, nil
		}
		parent, ok, err := parentOf(b)
		if err != nil {
			return 0, false, err
		}
		if !ok {
			return 0, false, fmt.Errorf("%w: block %d has no parent_hash", ErrChainBroken, i)
		}
		expect = parent
	}
}

// isSentICP reports whether ICP ledger block b is the transfer s from me.
func isSentICP(index uint64, b *pb.Block, me Account, s Sent) bool {
	p, err := CheckICPTransfer(index, b, Expect{Payer: me, Payee: s.To, MinAmount: s.Amount, Memo: s.Memo})
	if err != nil || p.Amount.Cmp(s.Amount) != 0 {
		return false
	}
	ts := b.GetTransaction().GetCreatedAtTime()
	return ts != nil && ts.GetTimestampNanos() == s.CreatedAt
}
