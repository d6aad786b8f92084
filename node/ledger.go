package node

import (
	"errors"
	"fmt"
	"sync"

	"github.com/aviate-labs/agent-go/identity"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// ledger connects to the ICP ledger on first use (agent-go fetches the root key then), so a node
// whose replica is down still starts, and retries the connection on later calls.
type ledger struct {
	n  *Node
	mu sync.Mutex
	c  *icp.Client
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
func (l *ledger) client() (*icp.Client, error) {
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
