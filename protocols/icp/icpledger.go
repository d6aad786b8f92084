package icp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aviate-labs/agent-go/candid/idl"
	"github.com/aviate-labs/agent-go/certification"
	pb "github.com/aviate-labs/agent-go/clients/ledger/proto/v1"
	"github.com/aviate-labs/agent-go/principal"
	"github.com/fxamacker/cbor/v2"
	"google.golang.org/protobuf/proto"
)

// The ICP ledger (ryjl3-tyaaa-aaaaa-aaaba-cai) has no ICRC-3 methods: its blocks are protobuf
// `ic_ledger.pb.v1.Block`s served by query_encoded_blocks (older ones by archive canisters), a
// block's hash is SHA-256 of its encoding, each block names its parent's hash, and the ledger's
// certified data is the hash of its last block (shared/specs/ICP.md §7). Types below follow
// rs/ledger_suite/icp/ledger.did.

// ICPBlocksArgs is the ICP ledger's GetBlocksArgs (query_encoded_blocks, archive callbacks).
type ICPBlocksArgs struct {
	Start  uint64 `ic:"start"`
	Length uint64 `ic:"length"`
}

// QueryArchiveError is an archive callback's error variant.
type QueryArchiveError struct {
	BadFirstBlockIndex *struct {
		RequestedIndex  uint64 `ic:"requested_index"`
		FirstValidIndex uint64 `ic:"first_valid_index"`
	} `ic:"BadFirstBlockIndex,variant"`
	Other *struct {
		ErrorCode    uint64 `ic:"error_code"`
		ErrorMessage string `ic:"error_message"`
	} `ic:"Other,variant"`
}

// ArchivedEncodedBlocksRange points at an archive canister holding [Start, Start+Length).
type ArchivedEncodedBlocksRange struct {
	Callback idl.Function `ic:"callback"`
	Start    uint64       `ic:"start"`
	Length   uint64       `ic:"length"`
}

// QueryEncodedBlocksResponse is query_encoded_blocks's result.
type QueryEncodedBlocksResponse struct {
	Certificate     *[]byte                      `ic:"certificate"`
	Blocks          [][]byte                     `ic:"blocks"`
	ChainLength     uint64                       `ic:"chain_length"`
	FirstBlockIndex uint64                       `ic:"first_block_index"`
	ArchivedBlocks  []ArchivedEncodedBlocksRange `ic:"archived_blocks"`
}

// GetEncodedBlocksResult is an encoded-blocks archive callback's result.
type GetEncodedBlocksResult struct {
	Ok  *[][]byte          `ic:"Ok,variant"`
	Err *QueryArchiveError `ic:"Err,variant"`
}

// ArchiveInfo is one entry of the ledger's archives list.
type ArchiveInfo struct {
	CanisterID principal.Principal `ic:"canister_id"`
}

// Archives is the ICP ledger's archives result.
type Archives struct {
	Archives []ArchiveInfo `ic:"archives"`
}

// icpPage is the most blocks asked of the ledger or an archive in one query (the ICP ledger
// answers at most 2,000).
const icpPage = 2_000

// ErrForeignArchive is returned when an archive callback names a canister that is neither the
// ledger nor one of the archives the ledger lists.
var ErrForeignArchive = errors.New("ledger reply points at an archive the ledger does not list")

// icpState is the ICP-ledger path's per-client state.
type icpState struct {
	mu       sync.Mutex
	archives []principal.Principal // the ledger's archives as last listed
	verified map[uint64][32]byte   // block hashes already chained to a certified tip
}

// DecodeICPBlock decodes one encoded ICP ledger block (protobuf ic_ledger.pb.v1.Block) and
// returns it with its hash, SHA-256 of the encoding.
func DecodeICPBlock(raw []byte) (*pb.Block, [32]byte, error) {
	var b pb.Block
	if err := proto.Unmarshal(raw, &b); err != nil {
		return nil, [32]byte{}, fmt.Errorf("%w: block is not a protobuf Block: %v", ErrMalformed, err)
	}
	return &b, sha256.Sum256(raw), nil
}

// parentOf returns a block's parent hash; ok is false for the genesis block (no parent).
func parentOf(b *pb.Block) (h [32]byte, ok bool, err error) {
	if b.ParentHash == nil {
		return h, false, nil
	}
	if len(b.ParentHash.Hash) != 32 {
		return h, false, fmt.Errorf("%w: parent_hash is %d bytes", ErrChainBroken, len(b.ParentHash.Hash))
	}
	return [32]byte(b.ParentHash.Hash), true, nil
}

// CheckICPTransfer checks that an ICP ledger block is a plain transfer matching want.
func CheckICPTransfer(index uint64, b *pb.Block, want Expect) (*Payment, error) {
	tx := b.GetTransaction()
	send := tx.GetSend()
	if send == nil {
		kind := "empty"
		switch {
		case tx.GetMint() != nil:
			kind = "a mint"
		case tx.GetBurn() != nil:
			kind = "a burn"
		}
		return nil, fmt.Errorf("%w: block %d is %s", ErrNotTransfer, index, kind)
	}
	if send.GetApprove() != nil || send.GetTransferFrom() != nil {
		return nil, fmt.Errorf("%w: block %d is an approve or transfer_from", ErrNotTransfer, index)
	}
	to, err := AccountIDFromBytes(send.GetTo().GetHash())
	if err != nil {
		return nil, fmt.Errorf("%w: block %d to: %v", ErrMalformed, index, err)
	}
	from, err := AccountIDFromBytes(send.GetFrom().GetHash())
	if err != nil {
		return nil, fmt.Errorf("%w: block %d from: %v", ErrMalformed, index, err)
	}
	if to != want.Payee.ID() {
		return nil, fmt.Errorf("%w: block %d", ErrWrongPayee, index)
	}
	if from != want.Payer.ID() {
		return nil, fmt.Errorf("%w: block %d", ErrWrongPayer, index)
	}
	memo := tx.GetIcrc1Memo().GetMemo()
	if !bytes.Equal(memo, want.Memo) {
		return nil, fmt.Errorf("%w: block %d", ErrWrongMemo, index)
	}
	if send.Amount == nil {
		return nil, fmt.Errorf("%w: block %d has no amount", ErrMalformed, index)
	}
	amount := new(big.Int).SetUint64(send.Amount.GetE8S())
	if want.MinAmount != nil && amount.Cmp(want.MinAmount) < 0 {
		return nil, fmt.Errorf("%w: block %d pays %s, price is %s", ErrInsufficient, index, amount, want.MinAmount)
	}
	p := &Payment{Block: index, Amount: amount, Memo: append([]byte(nil), memo...)}
	if ts := b.GetTimestamp(); ts != nil {
		p.Timestamp = time.Unix(0, int64(ts.GetTimestampNanos())).UTC()
	}
	return p, nil
}

// classify wraps a failed ledger query: a query whose certificate (the replica's signature check)
// fails is as uncertified as a forged tip; anything else is a malformed reply.
func classify(err error) error {
	if msg := err.Error(); strings.Contains(msg, "signature verification failed") || strings.Contains(msg, "certificate outdated") {
		return fmt.Errorf("%w: %v", ErrUncertified, err)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// queryEncoded asks the ledger for encoded blocks [start, start+length).
func (c *Client) queryEncoded(ctx context.Context, start, length uint64) (*QueryEncodedBlocksResponse, error) {
	var res QueryEncodedBlocksResponse
	if err := c.query(ctx, "query_encoded_blocks", []any{ICPBlocksArgs{Start: start, Length: length}}, []any{&res}); err != nil {
		return nil, classify(err)
	}
	if uint64(len(res.Blocks)) > length {
		return nil, fmt.Errorf("%w: query_encoded_blocks returned %d blocks for %d asked", ErrMalformed, len(res.Blocks), length)
	}
	if err := checkArchiveRanges(len(res.ArchivedBlocks), length); err != nil {
		return nil, err
	}
	return &res, nil
}

// allowedArchive reports whether p may serve archived blocks: the ledger itself or one of the
// canisters its archives method lists (listed again when p is not known yet).
func (c *Client) allowedArchive(ctx context.Context, p principal.Principal) (bool, error) {
	if p.Equal(c.ledger) {
		return true, nil
	}
	c.icpl.mu.Lock()
	known := slices.ContainsFunc(c.icpl.archives, p.Equal)
	c.icpl.mu.Unlock()
	if known {
		return true, nil
	}
	var as Archives
	if err := c.query(ctx, "archives", []any{}, []any{&as}); err != nil {
		return false, classify(err)
	}
	list := make([]principal.Principal, 0, len(as.Archives))
	for _, a := range as.Archives {
		list = append(list, a.CanisterID)
	}
	c.icpl.mu.Lock()
	c.icpl.archives = list
	c.icpl.mu.Unlock()
	return slices.ContainsFunc(list, p.Equal), nil
}

// fetchArchived reads [start, end) through an archive callback into out.
func (c *Client) fetchArchived(ctx context.Context, a ArchivedEncodedBlocksRange, start, end uint64, out map[uint64][]byte) error {
	cb := a.Callback.Method
	ok, err := c.allowedArchive(ctx, cb.Principal)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: archive callback names %s", ErrForeignArchive, cb.Principal)
	}
	for next := start; next < end; {
		var res GetEncodedBlocksResult
		args := ICPBlocksArgs{Start: next, Length: min(end-next, icpPage)}
		if err := c.boundedQuery(ctx, cb.Principal, cb.Method, []any{args}, []any{&res}); err != nil {
			return fmt.Errorf("archive %s: %w", cb.Principal, classify(err))
		}
		if res.Err != nil || res.Ok == nil {
			return fmt.Errorf("%w: archive %s refused blocks from %d", ErrChainBroken, cb.Principal, next)
		}
		blocks := *res.Ok
		if len(blocks) == 0 || uint64(len(blocks)) > args.Length {
			return fmt.Errorf("%w: archive %s returned %d blocks for %d asked", ErrChainBroken, cb.Principal, len(blocks), args.Length)
		}
		for i, b := range blocks {
			out[next+uint64(i)] = b
		}
		next += uint64(len(blocks))
	}
	return nil
}

// icpBlocks fetches encoded blocks [from, to] into out, following archive callbacks, and returns
// the last ledger response (its certificate and chain length describe the tip then).
func (c *Client) icpBlocks(ctx context.Context, from, to uint64, out map[uint64][]byte) (*QueryEncodedBlocksResponse, error) {
	var last *QueryEncodedBlocksResponse
	for next := from; next <= to; {
		res, err := c.queryEncoded(ctx, next, min(to-next+1, icpPage))
		if err != nil {
			return nil, err
		}
		last = res
		for i, b := range res.Blocks {
			if idx := res.FirstBlockIndex + uint64(i); idx >= next && idx <= to {
				out[idx] = b
			}
		}
		for _, a := range res.ArchivedBlocks {
			lo, hi := max(a.Start, next), min(a.Start+a.Length, to+1)
			if lo < hi && a.Start+a.Length > a.Start {
				if err := c.fetchArchived(ctx, a, lo, hi, out); err != nil {
					return nil, err
				}
			}
		}
		start := next
		for _, ok := out[next]; ok && next <= to; _, ok = out[next] {
			next++
		}
		if next == start {
			if res.ChainLength <= next {
				return res, nil // the chain ends before to; the caller compares with the tip
			}
			return nil, fmt.Errorf("%w: the ledger did not return block %d", ErrChainBroken, next)
		}
	}
	return last, nil
}

// verifyICPTip checks the response's certificate: signed by the root key, recent, and certifying
// tipHash as the ledger's data.
func (c *Client) verifyICPTip(res *QueryEncodedBlocksResponse, tipHash [32]byte) error {
	if res.Certificate == nil || len(*res.Certificate) == 0 {
		return fmt.Errorf("%w: the ledger returned no certificate", ErrUncertified)
	}
	var cert certification.Certificate
	if err := cbor.Unmarshal(*res.Certificate, &cert); err != nil {
		return fmt.Errorf("%w: certificate: %v", ErrMalformed, err)
	}
	if err := certification.VerifyCertifiedData(cert, c.ledger, c.root, tipHash[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrUncertified, err)
	}
	if err := cert.VerifyTime(c.maxAge); err != nil {
		return fmt.Errorf("%w: %v", ErrUncertified, err)
	}
	return nil
}

// verifyICPPayment is VerifyPayment on the ICP ledger: block N is fetched and checked first,
// then the blocks from N to the certified tip (at most maxWalk of them, and block N at most maxDepth behind the tip and maxPayAge old) are fetched and their
// parent_hash links checked down from the certified tip hash to N.
func (c *Client) verifyICPPayment(ctx context.Context, block uint64, want Expect) (*Payment, error) {
	first, err := c.queryEncoded(ctx, block, 1)
	if err != nil {
		return nil, err
	}
	if block >= first.ChainLength {
		return nil, fmt.Errorf("%w: block %d, chain length %d", ErrBlockNotFound, block, first.ChainLength)
	}
	if depth := first.ChainLength - 1 - block; depth > c.maxDepth {
		return nil, fmt.Errorf("%w: block %d is %d blocks behind the tip, the limit is %d", ErrPaymentTooDeep, block, depth, c.maxDepth)
	}
	raw := map[uint64][]byte{}
	if len(first.Blocks) == 1 && first.FirstBlockIndex == block {
		raw[block] = first.Blocks[0]
	} else {
		for _, a := range first.ArchivedBlocks {
			if a.Start <= block && block < a.Start+a.Length {
				if err := c.fetchArchived(ctx, a, block, block+1, raw); err != nil {
					return nil, err
				}
				break
			}
		}
	}
	payRaw, ok := raw[block]
	if !ok {
		return nil, fmt.Errorf("%w: the ledger did not return block %d", ErrChainBroken, block)
	}
	payBlock, payHash, err := DecodeICPBlock(payRaw)
	if err != nil {
		return nil, err
	}
	p, err := CheckICPTransfer(block, payBlock, want)
	if err != nil {
		return nil, err
	}
	if p.Timestamp.IsZero() {
		return nil, fmt.Errorf("%w: block %d has no timestamp", ErrMalformed, block)
	}
	if age := c.now().Sub(p.Timestamp); age > c.maxPayAge {
		return nil, fmt.Errorf("%w: block %d is from %s, the limit is %s", ErrPaymentTooOld, block, p.Timestamp.Format(time.RFC3339), c.maxPayAge)
	}

	// Walk: from the tip down to block N, or, when N was verified before, down to the highest
	// block below the tip already chained to a certified tip (blocks never change once certified).
	tipIdx := first.ChainLength - 1
	stop, stopHash := block, payHash
	c.icpl.mu.Lock()
	if h, ok := c.icpl.verified[block]; ok {
		if h != payHash {
			c.icpl.mu.Unlock()
			return nil, fmt.Errorf("%w: block %d no longer matches its verified hash", ErrChainBroken, block)
		}
		for k, h := range c.icpl.verified {
			if k > stop && k < tipIdx {
				stop, stopHash = k, h
			}
		}
	}
	c.icpl.mu.Unlock()
	if tipIdx-stop > c.maxWalk {
		// The ICP ledger certifies only its tip, so a walk cannot stop half-way and resume.
		return nil, fmt.Errorf("%w: block %d is %d blocks behind the tip", ErrWalkLimit, stop, tipIdx-stop)
	}
	res := first
	if tipIdx > stop {
		if res, err = c.icpBlocks(ctx, stop+1, tipIdx, raw); err != nil {
			return nil, err
		}
	}
	// The ledger may have grown meanwhile: follow it to the tip of the last answer.
	for res.ChainLength > 0 && res.ChainLength-1 > tipIdx {
		if res.ChainLength-1-stop > c.maxWalk {
			return nil, fmt.Errorf("%w: the tip moved %d blocks past block %d", ErrWalkLimit, res.ChainLength-1-stop, stop)
		}
		from := tipIdx + 1
		tipIdx = res.ChainLength - 1
		if res, err = c.icpBlocks(ctx, from, tipIdx, raw); err != nil {
			return nil, err
		}
	}
	if res.ChainLength != tipIdx+1 {
		return nil, fmt.Errorf("%w: chain length went from %d to %d", ErrChainBroken, tipIdx+1, res.ChainLength)
	}
	tipRaw, ok := raw[tipIdx]
	if !ok {
		return nil, fmt.Errorf("%w: the ledger did not return its tip block %d", ErrChainBroken, tipIdx)
	}
	if err := c.verifyICPTip(res, sha256.Sum256(tipRaw)); err != nil {
		return nil, err
	}
	hashes := map[uint64][32]byte{}
	expect := sha256.Sum256(tipRaw)
	for i := tipIdx; i > stop; i-- {
		b, h, err := DecodeICPBlock(raw[i])
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", i, err)
		}
		if h != expect {
			return nil, fmt.Errorf("%w: block %d hashes to %x, its successor names %x", ErrChainBroken, i, h[:6], expect[:6])
		}
		hashes[i] = h
		parent, ok, err := parentOf(b)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", i, err)
		}
		if !ok {
			return nil, fmt.Errorf("%w: block %d has no parent_hash", ErrChainBroken, i)
		}
		expect = parent
	}
	if stopHash != expect {
		return nil, fmt.Errorf("%w: block %d hashes to %x, its successor names %x", ErrChainBroken, stop, stopHash[:6], expect[:6])
	}
	c.icpl.mu.Lock()
	defer c.icpl.mu.Unlock()
	hashes[block] = payHash
	if c.icpl.verified == nil || len(c.icpl.verified) > 100_000 {
		c.icpl.verified = map[uint64][32]byte{}
	}
	for i, h := range hashes {
		c.icpl.verified[i] = h
	}
	return p, nil
}
