package node

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/aviate-labs/agent-go/identity"
	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// Ledger is what the node uses of the ICP ledger: the payer's transfers and the search for a
// transfer whose reply was lost, the coordinator's payment verification, and the balance and token
// details for display. *icp.Client implements it; tests use the hand-written fake beside it
// (ledgerfake_test.go) so payment logic runs without an emulated replica.
type Ledger interface {
	// Principal is the paying account's owner.
	Principal() principal.Principal
	// Ledger is the ledger canister's ID.
	Ledger() principal.Principal
	// Transfer sends amount to to, stamped with createdAt so the ledger deduplicates a retry: a
	// retry of an executed transfer returns the first one's block, not an error.
	Transfer(ctx context.Context, to icp.Account, amount *big.Int, memo []byte, createdAt time.Time) (uint64, error)
	// LogLength is the number of blocks on the ledger (where a search for a new transfer starts).
	LogLength(ctx context.Context) (uint64, error)
	// FindTransfer looks for s among the blocks from from on, sent by Principal.
	FindTransfer(ctx context.Context, from uint64, s icp.Sent) (uint64, bool, error)
	// VerifyPayment checks that block is a certified transfer as want describes.
	VerifyPayment(ctx context.Context, block uint64, want icp.Expect) (*icp.Payment, error)
	// Balance is a's balance in base units.
	Balance(ctx context.Context, a icp.Account) (*big.Int, error)
	// Token reads the token's symbol, decimals and fee.
	Token(ctx context.Context) (icp.Token, error)
	// CachedToken returns the token details if they were read already, without asking.
	CachedToken() (icp.Token, bool)
	// Kind is the configured kind, or the detected one (ICRC-3 or the ICP ledger), remembered.
	Kind(ctx context.Context) (icp.LedgerKind, error)
	// KnownKind is the configured or detected kind, without asking (auto before detection).
	KnownKind() icp.LedgerKind
}

var _ Ledger = (*icp.Client)(nil)

// ledger connects to the ICP ledger on first use (agent-go fetches the root key then), so a node
// whose replica is down still starts, and retries the connection on later calls. It also holds
// the payer's lock (one payment decision at a time) and the coordinator's per-peer budget of
// payment verifications.
type ledger struct {
	n  *Node
	mu sync.Mutex
	c  Ledger // connected on first use; tests set it to a fake

	payMu sync.Mutex // serialises pay: read the record, transfer, record the block

	limMu  sync.Mutex
	limits map[peer.ID]*rate.Limiter
}

// maxLimitedPeers bounds the verification budgets kept; beyond it, budgets that are full again
// (peers idle for a while) are forgotten.
const maxLimitedPeers = 10_000

// allowVerify takes one payment verification from p's budget, and reports whether there was one.
// A verification makes the coordinator query the ledger, so each peer gets
// icp.verifications_per_peer per minute, with the same burst.
func (l *ledger) allowVerify(p peer.ID) bool {
	per := l.n.cfg.ICP.VerificationsPerPeer
	if per <= 0 {
		per = 10
	}
	l.limMu.Lock()
	defer l.limMu.Unlock()
	if l.limits == nil {
		l.limits = map[peer.ID]*rate.Limiter{}
	}
	lim, ok := l.limits[p]
	if !ok {
		if len(l.limits) >= maxLimitedPeers {
			now := time.Now()
			for q, ql := range l.limits {
				if ql.TokensAt(now) >= float64(ql.Burst()) {
					delete(l.limits, q)
				}
			}
			if len(l.limits) >= maxLimitedPeers {
				return false // every budget is in use: refuse newcomers until some refill
			}
		}
		lim = rate.NewLimiter(rate.Every(time.Minute/time.Duration(per)), per)
		l.limits[p] = lim
	}
	return lim.Allow()
}

// icpIdentity returns the paying identity: the imported dfx PEM (secp256k1, Ed25519 or
// prime256v1), or the node's own Ed25519 key. A PEM the node cannot use is refused with one
// sentence naming the file and the reason.
func (n *Node) icpIdentity() (identity.Identity, error) {
	if path := n.cfg.ICP.IdentityPEM; path != "" {
		raw, err := readSecret(path)
		if err != nil {
			return nil, fmt.Errorf("icp.identity_pem: %w", err)
		}
		id, err := icp.ParseIdentityPEM(raw)
		if err != nil {
			return nil, fmt.Errorf("icp.identity_pem %s cannot be used: %v", path, err)
		}
		return id, nil
	}
	if n.key.Type() != crypto.Ed25519 {
		return nil, errors.New("node identity is not an Ed25519 key")
	}
	raw, err := n.key.Raw()
	if err != nil {
		return nil, err
	}
	if len(raw) != 64 {
		return nil, errors.New("node identity is not an Ed25519 key")
	}
	return identity.NewEd25519Identity(raw[32:], raw)
}

// client returns the connected ledger client.
func (l *ledger) client() (Ledger, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		return l.c, nil
	}
	id, err := l.n.icpIdentity()
	if err != nil {
		return nil, err
	}
	c, err := icp.New(icp.Config{
		ReplicaURL: l.n.cfg.ICP.ReplicaURL, LedgerID: l.n.cfg.ICP.LedgerCanisterID,
		FetchRootKey: l.n.cfg.ICP.FetchRootKey, Identity: id, LedgerKind: l.n.cfg.ICP.LedgerKind,
		MaxPaymentAge: l.n.cfg.ICP.MaxPaymentAge.Duration, MaxPaymentDepth: l.n.cfg.ICP.MaxPaymentDepth,
		MaxVerifyBlocks: l.n.cfg.ICP.MaxVerifyBlocks,
	})
	if err != nil {
		return nil, err
	}
	l.c = c
	return c, nil
}

// kind returns the ledger kind for display without asking the ledger: the configured one, or the
// detected one once the node has talked to the ledger ("auto" before).
func (l *ledger) kind() string {
	l.mu.Lock()
	c := l.c
	l.mu.Unlock()
	if c != nil {
		return string(c.KnownKind())
	}
	if k := l.n.cfg.ICP.LedgerKind; k != "" {
		return k
	}
	return string(icp.KindAuto)
}

// token returns the ledger's token details if the node has read them already.
func (l *ledger) token() (icp.Token, bool) {
	l.mu.Lock()
	c := l.c
	l.mu.Unlock()
	if c == nil {
		return icp.Token{}, false
	}
	return c.CachedToken()
}
