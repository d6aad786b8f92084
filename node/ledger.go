package node

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/califusion/califusion/protocols/icp"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// ledger connects to the ICP ledger on first use (agent-go fetches the root key then), so a node
// whose replica is down still starts, and retries the connection on later calls. It also holds
// the payer's lock (one payment decision at a time) and the coordinator's per-peer budget of
// payment verifications.
type ledger struct {
	n  *Node
	mu sync.Mutex
	c  *icp.Client

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

// icpKey returns the paying identity: the imported dfx PEM, or the node's own Ed25519 key.
func (n *Node) icpKey() (ed25519.PrivateKey, error) {
	if path := n.cfg.ICP.IdentityPEM; path != "" {
		raw, err := readSecret(path)
		if err != nil {
			return nil, fmt.Errorf("icp.identity_pem: %w", err)
		}
		block, _ := pem.Decode(raw)
		if block == nil {
			return nil, fmt.Errorf("icp.identity_pem %s holds no PEM block", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("icp.identity_pem %s: %w (only Ed25519 dfx identities are supported)", path, err)
		}
		key, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("icp.identity_pem %s is not an Ed25519 key", path)
		}
		return key, nil
	}
	if n.key.Type() != crypto.Ed25519 {
		return nil, errors.New("node identity is not an Ed25519 key")
	}
	raw, err := n.key.Raw()
	if err != nil {
		return nil, err
	}
	return ed25519.PrivateKey(raw), nil
}

// client returns the connected ledger client.
func (l *ledger) client() (*icp.Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		return l.c, nil
	}
	key, err := l.n.icpKey()
	if err != nil {
		return nil, err
	}
	c, err := icp.New(icp.Config{
		ReplicaURL: l.n.cfg.ICP.ReplicaURL, LedgerID: l.n.cfg.ICP.LedgerCanisterID,
		FetchRootKey: l.n.cfg.ICP.FetchRootKey, Key: key,
		MaxPaymentAge: l.n.cfg.ICP.MaxPaymentAge.Duration, MaxPaymentDepth: l.n.cfg.ICP.MaxPaymentDepth,
		MaxVerifyBlocks: l.n.cfg.ICP.MaxVerifyBlocks,
	})
	if err != nil {
		return nil, err
	}
	l.c = c
	return c, nil
}
