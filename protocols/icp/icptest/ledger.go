package icptest

import (
	"bytes"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/aviate-labs/agent-go/candid/idl"
	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/protocols/icp"
)

// Ledger is an in-memory ICRC-1/ICRC-3 ledger: balances, transfers with deduplication and every
// TransferError variant, and a block log chained by phash.
type Ledger struct {
	mu       sync.Mutex
	fee      uint64
	maxMemo  int
	legacy   bool // emit tx.op = "xfer" blocks instead of btype = "1xfer"
	page     uint64
	now      func() time.Time
	balances map[string]*big.Int
	blocks   []icp.Value
	hashes   [][32]byte
	dedup    map[string]dedupEntry // ICRC-1 deduplication: transactions with a created_at_time in the window
	minter   principal.Principal
}

func newLedger(fee uint64, legacy bool, page uint64, now func() time.Time) *Ledger {
	return &Ledger{fee: fee, maxMemo: 32, legacy: legacy, page: page, now: now, balances: map[string]*big.Int{}, dedup: map[string]dedupEntry{},
		minter: principal.MustDecode("aaaaa-aa")}
}

var zeroSub = make([]byte, 32)

// key normalises an account: a null subaccount is the 32 zero bytes.
func key(a icp.Account) string {
	sub := zeroSub
	if a.Subaccount != nil {
		sub = *a.Subaccount
	}
	return string(a.Owner.Raw) + "/" + string(sub)
}

func accountValue(a icp.Account) icp.Value {
	items := []icp.Value{icp.BlobValue(a.Owner.Raw)}
	if a.Subaccount != nil && !bytes.Equal(*a.Subaccount, zeroSub) {
		items = append(items, icp.BlobValue(*a.Subaccount))
	}
	return icp.ArrayValue(items...)
}

func (l *Ledger) balance(a icp.Account) *big.Int {
	if b, ok := l.balances[key(a)]; ok {
		return b
	}
	return new(big.Int)
}

// append adds a block, chaining it to the previous one.
func (l *Ledger) append(entries []icp.MapEntry) uint64 {
	if n := len(l.hashes); n > 0 {
		entries = append(entries, icp.MapEntry{Key: "phash", Value: icp.BlobValue(l.hashes[n-1][:])})
	}
	entries = append(entries, icp.MapEntry{Key: "ts", Value: icp.NatValue(uint64(l.now().UnixNano()))})
	b := icp.MapValue(entries...)
	h, _ := b.Hash()
	l.blocks = append(l.blocks, b)
	l.hashes = append(l.hashes, h)
	return uint64(len(l.blocks) - 1)
}

// Mint credits amount to an account (a "1mint" block).
func (l *Ledger) Mint(to icp.Account, amount uint64) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.balance(to)
	l.balances[key(to)] = new(big.Int).Add(b, new(big.Int).SetUint64(amount))
	tx := []icp.MapEntry{{Key: "amt", Value: icp.NatValue(amount)}, {Key: "to", Value: accountValue(to)}}
	var entries []icp.MapEntry
	if l.legacy {
		tx = append(tx, icp.MapEntry{Key: "op", Value: icp.TextValue("mint")})
	} else {
		entries = append(entries, icp.MapEntry{Key: "btype", Value: icp.TextValue("1mint")})
	}
	return l.append(append(entries, icp.MapEntry{Key: "tx", Value: icp.MapValue(tx...)}))
}

const (
	txWindow = 24 * time.Hour
	drift    = 2 * time.Minute
)

// dedupEntry remembers a deduplicable transaction: its block and its created_at_time.
type dedupEntry struct {
	block uint64
	at    time.Time
}

// pruneDedup forgets transactions created before the window: a retry of one is TooOld anyway,
// as on the reference ledger.
func (l *Ledger) pruneDedup(now time.Time) {
	for k, e := range l.dedup {
		if e.at.Before(now.Add(-txWindow - drift)) {
			delete(l.dedup, k)
		}
	}
}

// Transfer executes icrc1_transfer for caller.
func (l *Ledger) Transfer(caller principal.Principal, arg icp.TransferArg) icp.TransferResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	fail := func(e icp.TransferError) icp.TransferResult { return icp.TransferResult{Err: &e} }
	from := icp.Account{Owner: caller, Subaccount: arg.FromSubaccount}
	if arg.Fee != nil && arg.Fee.BigInt().Cmp(new(big.Int).SetUint64(l.fee)) != 0 {
		return fail(icp.TransferError{BadFee: &struct {
			ExpectedFee idl.Nat `ic:"expected_fee"`
		}{idl.NewNat(l.fee)}})
	}
	if arg.Memo != nil && len(*arg.Memo) > l.maxMemo {
		return fail(icp.TransferError{GenericError: &struct {
			ErrorCode idl.Nat `ic:"error_code"`
			Message   string  `ic:"message"`
		}{idl.NewNat(uint64(1)), fmt.Sprintf("the memo field size of %d bytes is above the allowed limit of %d bytes", len(*arg.Memo), l.maxMemo)}})
	}
	now := l.now()
	var dedupKey string
	if arg.CreatedAtTime != nil {
		at := time.Unix(0, int64(*arg.CreatedAtTime))
		if at.Before(now.Add(-txWindow - drift)) {
			return fail(icp.TransferError{TooOld: &idl.Null{}})
		}
		if at.After(now.Add(drift)) {
			return fail(icp.TransferError{CreatedInFuture: &struct {
				LedgerTime uint64 `ic:"ledger_time"`
			}{uint64(now.UnixNano())}})
		}
		dedupKey = dedupOf(caller, arg)
		if e, dup := l.dedup[dedupKey]; dup {
			return fail(icp.TransferError{Duplicate: &struct {
				DuplicateOf idl.Nat `ic:"duplicate_of"`
			}{idl.NewNat(e.block)}})
		}
	}
	amount := arg.Amount.BigInt()
	need := new(big.Int).Add(amount, new(big.Int).SetUint64(l.fee))
	bal := l.balance(from)
	if bal.Cmp(need) < 0 {
		return fail(icp.TransferError{InsufficientFunds: &struct {
			Balance idl.Nat `ic:"balance"`
		}{idl.NewBigNat(bal)}})
	}
	l.balances[key(from)] = new(big.Int).Sub(bal, need)
	l.balances[key(arg.To)] = new(big.Int).Add(l.balance(arg.To), amount)

	amt := idl.NewBigNat(amount)
	tx := []icp.MapEntry{{Key: "amt", Value: icp.Value{Nat: &amt}}, {Key: "from", Value: accountValue(from)}, {Key: "to", Value: accountValue(arg.To)}}
	if arg.Memo != nil {
		tx = append(tx, icp.MapEntry{Key: "memo", Value: icp.BlobValue(*arg.Memo)})
	}
	if arg.CreatedAtTime != nil {
		tx = append(tx, icp.MapEntry{Key: "ts", Value: icp.NatValue(*arg.CreatedAtTime)})
	}
	var entries []icp.MapEntry
	if arg.Fee != nil {
		tx = append(tx, icp.MapEntry{Key: "fee", Value: icp.NatValue(l.fee)})
	} else {
		entries = append(entries, icp.MapEntry{Key: "fee", Value: icp.NatValue(l.fee)})
	}
	if l.legacy {
		tx = append(tx, icp.MapEntry{Key: "op", Value: icp.TextValue("xfer")})
	} else {
		entries = append(entries, icp.MapEntry{Key: "btype", Value: icp.TextValue("1xfer")})
	}
	idx := l.append(append(entries, icp.MapEntry{Key: "tx", Value: icp.MapValue(tx...)}))
	if dedupKey != "" {
		if len(l.dedup)%1024 == 1023 {
			l.pruneDedup(now)
		}
		l.dedup[dedupKey] = dedupEntry{block: idx, at: time.Unix(0, int64(*arg.CreatedAtTime))}
	}
	n := idl.NewNat(idx)
	return icp.TransferResult{Ok: &n}
}

func dedupOf(caller principal.Principal, a icp.TransferArg) string {
	var memo, fee, from, to string
	if a.Memo != nil {
		memo = string(*a.Memo)
	}
	if a.Fee != nil {
		fee = a.Fee.BigInt().String()
	}
	if a.FromSubaccount != nil {
		from = string(*a.FromSubaccount)
	}
	to = key(a.To)
	return fmt.Sprintf("%x|%x|%s|%x|%s|%x|%d", caller.Raw, from, to, memo, fee, a.Amount.BigInt().Bytes(), *a.CreatedAtTime)
}

// tip returns the last block's index and hash; ok is false for an empty log.
func (l *Ledger) tip() (uint64, [32]byte, bool) {
	if len(l.hashes) == 0 {
		return 0, [32]byte{}, false
	}
	n := len(l.hashes) - 1
	return uint64(n), l.hashes[n], true
}

// Blocks returns blocks [start, start+length), truncated to the page size.
func (l *Ledger) Blocks(start, length uint64) icp.GetBlocksResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	res := icp.GetBlocksResult{LogLength: idl.NewNat(uint64(len(l.blocks))), Blocks: []icp.BlockWithID{}, ArchivedBlocks: []icp.ArchivedBlocks{}}
	if length > l.page {
		length = l.page
	}
	for i := start; i < start+length && i < uint64(len(l.blocks)); i++ {
		res.Blocks = append(res.Blocks, icp.BlockWithID{ID: idl.NewNat(i), Block: l.blocks[i]})
	}
	return res
}

// Tamper replaces block i's content without fixing the chain, as a lying ledger replica would.
func (l *Ledger) Tamper(i uint64, block icp.Value) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.blocks[i] = block
}

// Block returns a copy of block i.
func (l *Ledger) Block(i uint64) icp.Value {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.blocks[i]
}

// Len returns the number of blocks in the log.
func (l *Ledger) Len() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.blocks))
}
