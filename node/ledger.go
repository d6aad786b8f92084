package node

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"

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
	})
	if err != nil {
		return nil, err
	}
	l.c = c
	return c, nil
}
