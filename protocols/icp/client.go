package icp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aviate-labs/agent-go"
	"github.com/aviate-labs/agent-go/candid/idl"
	"github.com/aviate-labs/agent-go/identity"
	"github.com/aviate-labs/agent-go/principal"
)

// Config configures a Client.
type Config struct {
	ReplicaURL   string
	LedgerID     string
	FetchRootKey bool               // local replicas only; refused for mainnet URLs
	Key          ed25519.PrivateKey // the paying identity (the node key, or an imported dfx PEM)
	MaxCertAge   time.Duration      // oldest tip certificate VerifyPayment accepts (default 5 min)
	Identity     identity.Identity  // the paying identity when set (any dfx key kind); else Key
	LedgerKind   string             // "auto" (default), "icrc3" or "icp": how blocks are verified

	// Bounds on what one VerifyPayment may cost (zero: the defaults below).
	MaxPaymentAge   time.Duration    // oldest payment block accepted, by its ledger timestamp (default DefaultMaxPaymentAge)
	MaxPaymentDepth uint64           // most blocks a payment may lie behind the tip (default DefaultMaxPaymentDepth)
	MaxVerifyBlocks uint64           // most blocks one verification fetches for the chain walk (default DefaultMaxVerifyBlocks)
	Clock           func() time.Time // default time.Now
}

// Defaults of the VerifyPayment bounds.
const (
	DefaultMaxPaymentAge   = 720 * time.Hour
	DefaultMaxPaymentDepth = 1_000_000
	DefaultMaxVerifyBlocks = 10_000
)

// Client talks to one ledger through agent-go.
type Client struct {
	a      *agent.Agent
	ledger principal.Principal
	root   []byte
	maxAge time.Duration

	maxPayAge time.Duration
	maxDepth  uint64
	maxWalk   uint64
	now       func() time.Time

	mu       sync.Mutex
	verified map[uint64][32]byte // block hashes already chained to a certified tip

	kindMu sync.Mutex
	kind   LedgerKind // KindAuto until detected
	icpl   icpState   // the ICP-ledger path (icpledger.go)
	tok    tokenCache // symbol, decimals, fee (tokens.go)
}

// IsMainnet reports whether u points at the Internet Computer's public boundary nodes.
func IsMainnet(u *url.URL) bool {
	h := strings.ToLower(u.Hostname())
	for _, d := range []string{"icp-api.io", "icp0.io", "ic0.app"} {
		if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}

// New builds a client; with FetchRootKey it asks the replica for its root key once.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.ReplicaURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("icp: replica URL %q is not a URL", cfg.ReplicaURL)
	}
	if cfg.FetchRootKey && IsMainnet(u) {
		return nil, errors.New("icp: refusing fetch_root_key for a mainnet URL: the root key must be the built-in one")
	}
	ledger, err := principal.Decode(cfg.LedgerID)
	if err != nil {
		return nil, fmt.Errorf("icp: ledger canister ID %q: %w", cfg.LedgerID, err)
	}
	kind, err := ParseLedgerKind(cfg.LedgerKind)
	if err != nil {
		return nil, err
	}
	id := cfg.Identity
	if id == nil {
		if len(cfg.Key) != ed25519.PrivateKeySize {
			return nil, errors.New("icp: an identity or an Ed25519 private key is required")
		}
		if id, err = identity.NewEd25519Identity(cfg.Key.Public().(ed25519.PublicKey), cfg.Key); err != nil {
			return nil, err
		}
	}
	a, err := agent.New(agent.Config{
		Identity:     id,
		FetchRootKey: cfg.FetchRootKey,
		ClientConfig: []agent.ClientOption{agent.WithHostURL(u), agent.WithHttpClient(httpClient())},
		PollDelay:    50 * time.Millisecond,
		PollTimeout:  time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("icp: connect to %s: %w", cfg.ReplicaURL, err)
	}
	if cfg.MaxCertAge <= 0 {
		cfg.MaxCertAge = 5 * time.Minute
	}
	if cfg.MaxPaymentAge <= 0 {
		cfg.MaxPaymentAge = DefaultMaxPaymentAge
	}
	if cfg.MaxPaymentDepth == 0 {
		cfg.MaxPaymentDepth = DefaultMaxPaymentDepth
	}
	if cfg.MaxVerifyBlocks == 0 {
		cfg.MaxVerifyBlocks = DefaultMaxVerifyBlocks
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Client{a: a, ledger: ledger, root: a.GetRootKey(), maxAge: cfg.MaxCertAge,
		maxPayAge: cfg.MaxPaymentAge, maxDepth: cfg.MaxPaymentDepth, maxWalk: cfg.MaxVerifyBlocks, now: cfg.Clock,
		verified: map[uint64][32]byte{}, kind: kind}, nil
}

// Principal returns the paying identity's principal.
func (c *Client) Principal() principal.Principal { return c.a.Sender() }

// Ledger returns the ledger canister ID.
func (c *Client) Ledger() principal.Principal { return c.ledger }

func (c *Client) query(ctx context.Context, method string, in, out []any) error {
	if err := c.boundedQuery(ctx, c.ledger, method, in, out); err != nil {
		return fmt.Errorf("icp: %s: %w", method, err)
	}
	return nil
}

// Balance returns an account's balance in base units.
func (c *Client) Balance(ctx context.Context, a Account) (*big.Int, error) {
	var n idl.Nat
	if err := c.query(ctx, "icrc1_balance_of", []any{a}, []any{&n}); err != nil {
		return nil, err
	}
	return n.BigInt(), nil
}

// Fee returns the ledger's transfer fee.
func (c *Client) Fee(ctx context.Context) (*big.Int, error) {
	var n idl.Nat
	if err := c.query(ctx, "icrc1_fee", []any{}, []any{&n}); err != nil {
		return nil, err
	}
	return n.BigInt(), nil
}

// Decimals returns the ledger's decimals.
func (c *Client) Decimals(ctx context.Context) (uint8, error) {
	var d uint8
	return d, c.query(ctx, "icrc1_decimals", []any{}, []any{&d})
}

// Symbol returns the token symbol.
func (c *Client) Symbol(ctx context.Context) (string, error) {
	var s string
	return s, c.query(ctx, "icrc1_symbol", []any{}, []any{&s})
}

// Transfer sends amount to to with memo, stamped with createdAt so the ledger deduplicates a
// retry (a retry that finds the first transfer executed returns its block, not an error).
func (c *Client) Transfer(ctx context.Context, to Account, amount *big.Int, memo []byte, createdAt time.Time) (uint64, error) {
	ts := uint64(createdAt.UnixNano())
	arg := TransferArg{To: to, Amount: idl.NewBigNat(amount), CreatedAtTime: &ts}
	if memo != nil {
		m := append([]byte(nil), memo...)
		arg.Memo = &m
	}
	var res TransferResult
	if err := c.boundedCall(ctx, c.ledger, "icrc1_transfer", []any{arg}, []any{&res}); err != nil {
		return 0, fmt.Errorf("icp: icrc1_transfer: %w", err)
	}
	switch {
	case res.Ok != nil:
		return res.Ok.BigInt().Uint64(), nil
	case res.Err != nil:
		f := failureOf(res.Err)
		if f.Kind == ErrDuplicate {
			return f.DuplicateOf, nil
		}
		if f.Kind == ErrInsufficientFunds {
			return 0, c.shortfall(ctx, f, amount)
		}
		return 0, f
	}
	return 0, ErrMalformed
}

// Expect is what a payment must be.
type Expect struct {
	Payer     Account
	Payee     Account
	MinAmount *big.Int
	Memo      []byte
}

// Payment is a verified transfer.
type Payment struct {
	Block     uint64
	Amount    *big.Int
	Memo      []byte
	Timestamp time.Time
}

// tip is a certified chain tip.
type tip struct {
	index uint64
	hash  [32]byte
}

// certifiedTip fetches and verifies icrc3_get_tip_certificate.
func (c *Client) certifiedTip(ctx context.Context) (tip, error) {
	var dc *DataCertificate
	if err := c.query(ctx, "icrc3_get_tip_certificate", []any{}, []any{&dc}); err != nil {
		// agent-go verifies the replica's query signature through a certificate first; when that
		// certificate fails (wrong key, too old) the tip is just as uncertified.
		if msg := err.Error(); strings.Contains(msg, "signature verification failed") || strings.Contains(msg, "certificate outdated") {
			return tip{}, fmt.Errorf("%w: %v", ErrUncertified, err)
		}
		return tip{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return verifyTip(dc, c.ledger, c.root, c.maxAge)
}

// blocks fetches [from, to] (inclusive), paging as the ledger truncates answers. It also returns
// the ledger's log length as last reported (uncertified: good for refusing, not for accepting).
func (c *Client) blocks(ctx context.Context, from, to uint64) (map[uint64]Value, uint64, error) {
	out := map[uint64]Value{}
	next := from
	var logLen uint64
	for next <= to {
		var res GetBlocksResult
		args := []GetBlocksArgs{{Start: idl.NewNat(next), Length: idl.NewNat(to - next + 1)}}
		if err := c.query(ctx, "icrc3_get_blocks", []any{args}, []any{&res}); err != nil {
			return nil, 0, blocksErr(err)
		}
		ranges := 0
		for _, a := range res.ArchivedBlocks {
			ranges += max(len(a.Args), 1) // each entry is one archive query
		}
		if err := checkArchiveRanges(ranges, to-next+1); err != nil {
			return nil, 0, err
		}
		logLen = res.LogLength.BigInt().Uint64()
		if next >= logLen {
			return nil, logLen, fmt.Errorf("%w: block %d, the ledger has %d blocks", ErrBlockNotFound, next, logLen)
		}
		blocks := res.Blocks
		// Older blocks live in archive canisters: follow each callback (their content is
		// checked against the certified chain like any other block).
		for _, a := range res.ArchivedBlocks {
			var page GetBlocksResult
			cb := a.Callback.Method
			if err := c.boundedQuery(ctx, cb.Principal, cb.Method, []any{a.Args}, []any{&page}); err != nil {
				return nil, 0, fmt.Errorf("%w: archive %s: %v", ErrMalformed, cb.Principal, err)
			}
			blocks = append(blocks, page.Blocks...)
		}
		progressed := false
		for _, b := range blocks {
			id := b.ID.BigInt().Uint64()
			if id >= from && id <= to {
				out[id] = b.Block
				if id == next {
					progressed = true
				}
			}
		}
		for {
			if _, ok := out[next]; !ok {
				break
			}
			next++
		}
		if !progressed {
			return nil, 0, fmt.Errorf("%w: the ledger did not return block %d", ErrChainBroken, next)
		}
	}
	return out, logLen, nil
}

// maxArchiveRanges is the most archive ranges one ledger reply may list. A ledger lists one per
// archive canister holding part of the blocks asked for (a handful); each is a query this client
// makes, so a hostile ledger listing thousands would turn one verification into thousands of
// queries.
const maxArchiveRanges = 64

// checkArchiveRanges refuses (ErrMalformed) a ledger reply listing n archive ranges for asked
// blocks: more than maxArchiveRanges, or more ranges than blocks (each range holds a block; one
// is let through when none is asked for, as kind detection asks).
func checkArchiveRanges(n int, asked uint64) error {
	if limit := min(max(asked, 1), maxArchiveRanges); uint64(n) > limit {
		return fmt.Errorf("%w: the ledger's reply lists %d archive ranges for %d blocks asked, at most %d allowed", ErrMalformed, n, asked, limit)
	}
	return nil
}

// blocksErr classifies a failed block query: a reply whose signing certificate fails (wrong key,
// too old) is uncertified, anything else malformed.
func blocksErr(err error) error {
	if msg := err.Error(); strings.Contains(msg, "signature verification failed") || strings.Contains(msg, "certificate outdated") {
		return fmt.Errorf("%w: %v", ErrUncertified, err)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// VerifyPayment checks that block is a transfer matching want, on a chain that hashes up to the
// ledger's certified tip. The cheap checks come first, so that a bogus claim costs one small
// query: the named block alone is fetched and must be a transfer from the payer to the payee
// with the memo and at least the price, no older than MaxPaymentAge and no deeper than
// MaxPaymentDepth behind the tip. Only then is the tip certificate fetched and the chain walked,
// from the nearest block already chained to a certified tip (or the tip itself) down to block,
// fetching at most MaxVerifyBlocks blocks; a longer walk stops with ErrWalkLimit and keeps what it
// verified, so a retry resumes there.
func (c *Client) VerifyPayment(ctx context.Context, block uint64, want Expect) (*Payment, error) {
	if k, err := c.Kind(ctx); err != nil {
		return nil, fmt.Errorf("ledger kind: %w", classify(err))
	} else if k == KindICP {
		return c.verifyICPPayment(ctx, block, want)
	}
	one, logLen, err := c.blocks(ctx, block, block)
	if err != nil {
		return nil, err
	}
	payBlock := one[block]
	if depth := logLen - 1 - block; depth > c.maxDepth {
		return nil, fmt.Errorf("%w: block %d is %d blocks behind the ledger's tip, the limit is %d", ErrPaymentTooDeep, block, depth, c.maxDepth)
	}
	pay, err := checkTransfer(block, payBlock, want)
	if err != nil {
		return nil, err
	}
	if pay.Timestamp.IsZero() {
		return nil, fmt.Errorf("%w: block %d has no timestamp", ErrMalformed, block)
	}
	if age := c.now().Sub(pay.Timestamp); age > c.maxPayAge {
		return nil, fmt.Errorf("%w: block %d is from %s, the limit is %s", ErrPaymentTooOld, block, pay.Timestamp.Format(time.RFC3339), c.maxPayAge)
	}
	h, err := payBlock.Hash()
	if err != nil {
		return nil, fmt.Errorf("%w: block %d: %v", ErrMalformed, block, err)
	}

	t, err := c.certifiedTip(ctx)
	if err != nil {
		return nil, err
	}
	if block > t.index {
		return nil, fmt.Errorf("%w: block %d, certified tip %d", ErrBlockNotFound, block, t.index)
	}
	if depth := t.index - block; depth > c.maxDepth {
		return nil, fmt.Errorf("%w: block %d is %d blocks behind the certified tip, the limit is %d", ErrPaymentTooDeep, block, depth, c.maxDepth)
	}
	// The walk starts at the nearest block at or above block whose hash is already chained to a
	// certified tip (the ledger is append-only, so it stays chained), else at the tip.
	top, expect := t.index, t.hash
	c.mu.Lock()
	for k, v := range c.verified {
		if k >= block && k < top {
			top, expect = k, v
		}
	}
	c.mu.Unlock()
	if top == block {
		if h != expect {
			return nil, fmt.Errorf("%w: block %d no longer matches its verified hash", ErrChainBroken, block)
		}
		return pay, nil
	}
	// Blocks block+1..top link block to the anchor; fetch at most maxWalk of them, from the top.
	low, limited := block+1, false
	if top-block > c.maxWalk {
		low, limited = top-c.maxWalk+1, true
	}
	bs, _, err := c.blocks(ctx, low, top)
	if err != nil {
		return nil, err
	}
	hashes := map[uint64][32]byte{}
	for i := top; i >= low; i-- {
		b := bs[i]
		hi, err := b.Hash()
		if err != nil {
			return nil, fmt.Errorf("%w: block %d: %v", ErrMalformed, i, err)
		}
		if hi != expect {
			return nil, fmt.Errorf("%w: block %d hashes to %x, expected %x", ErrChainBroken, i, hi[:6], expect[:6])
		}
		hashes[i] = hi
		ph := b.Field("phash")
		if ph == nil || ph.Blob == nil || len(*ph.Blob) != 32 {
			return nil, fmt.Errorf("%w: block %d has no phash", ErrChainBroken, i)
		}
		expect = [32]byte(*ph.Blob)
	}
	if !limited && h != expect {
		return nil, fmt.Errorf("%w: block %d hashes to %x, expected %x", ErrChainBroken, block, h[:6], expect[:6])
	}
	if !limited {
		hashes[block] = h
	}
	if limited {
		// Keep only where the walk stopped: the next request resumes from there.
		hashes = map[uint64][32]byte{low: hashes[low]}
	}
	c.mu.Lock()
	if len(c.verified)+len(hashes) > 100_000 {
		c.verified = map[uint64][32]byte{}
	}
	for i, h := range hashes {
		c.verified[i] = h
	}
	c.mu.Unlock()
	if limited {
		return nil, fmt.Errorf("%w: block %d is %d blocks below the nearest verified block, %d were checked", ErrWalkLimit, block, top-block, c.maxWalk)
	}
	return pay, nil
}

// checkTransfer decodes a block as an ICRC-1 transfer and compares it with want.
func checkTransfer(index uint64, b Value, want Expect) (*Payment, error) {
	tx := b.Field("tx")
	if tx == nil || tx.Map == nil {
		return nil, fmt.Errorf("%w: block %d has no tx", ErrNotTransfer, index)
	}
	btype := ""
	if v := b.Field("btype"); v != nil && v.Text != nil {
		btype = *v.Text
	} else if v := tx.Field("op"); v != nil && v.Text != nil && *v.Text == "xfer" {
		btype = "1xfer"
	}
	if btype != "1xfer" || tx.Field("spender") != nil {
		return nil, fmt.Errorf("%w: block %d is %q", ErrNotTransfer, index, btype)
	}
	from, err := accountOf(tx.Field("from"))
	if err != nil {
		return nil, fmt.Errorf("%w: block %d from: %v", ErrMalformed, index, err)
	}
	to, err := accountOf(tx.Field("to"))
	if err != nil {
		return nil, fmt.Errorf("%w: block %d to: %v", ErrMalformed, index, err)
	}
	if !sameAccount(to, want.Payee) {
		return nil, fmt.Errorf("%w: block %d", ErrWrongPayee, index)
	}
	if !sameAccount(from, want.Payer) {
		return nil, fmt.Errorf("%w: block %d", ErrWrongPayer, index)
	}
	var memo []byte
	if m := tx.Field("memo"); m != nil && m.Blob != nil {
		memo = *m.Blob
	}
	if !bytes.Equal(memo, want.Memo) {
		return nil, fmt.Errorf("%w: block %d", ErrWrongMemo, index)
	}
	amt := tx.Field("amt")
	if amt == nil || amt.Nat == nil {
		return nil, fmt.Errorf("%w: block %d has no amount", ErrMalformed, index)
	}
	amount := amt.Nat.BigInt()
	if want.MinAmount != nil && amount.Cmp(want.MinAmount) < 0 {
		return nil, fmt.Errorf("%w: block %d pays %s, price is %s", ErrInsufficient, index, amount, want.MinAmount)
	}
	p := &Payment{Block: index, Amount: amount, Memo: memo}
	if ts := b.Field("ts"); ts != nil && ts.Nat != nil {
		p.Timestamp = time.Unix(0, ts.Nat.BigInt().Int64()).UTC()
	}
	return p, nil
}

// accountOf reads an ICRC-3 account: Array [Blob owner] or [Blob owner, Blob subaccount].
func accountOf(v *Value) (Account, error) {
	if v == nil || v.Array == nil || len(*v.Array) < 1 || len(*v.Array) > 2 {
		return Account{}, errors.New("not an account")
	}
	items := *v.Array
	if items[0].Blob == nil {
		return Account{}, errors.New("owner is not a blob")
	}
	a := Account{Owner: principal.Principal{Raw: *items[0].Blob}}
	if len(items) == 2 {
		if items[1].Blob == nil || len(*items[1].Blob) != 32 {
			return Account{}, errors.New("subaccount is not 32 bytes")
		}
		sub := *items[1].Blob
		a.Subaccount = &sub
	}
	return a, nil
}

// sameAccount compares accounts with a null subaccount equal to 32 zero bytes.
func sameAccount(a, b Account) bool {
	sub := func(x Account) []byte {
		if x.Subaccount == nil {
			return make([]byte, 32)
		}
		return *x.Subaccount
	}
	return bytes.Equal(a.Owner.Raw, b.Owner.Raw) && bytes.Equal(sub(a), sub(b))
}
