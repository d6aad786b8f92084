package e2e

import (
	"crypto/ed25519"
	"testing"

	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// attacker is a hostile peer inside the test process: an ordinary libp2p host with its own
// Ed25519 identity (which is also its ICP identity) that speaks the project's protocols through
// their client packages, or through raw streams when it wants to break them. It has no daemon, no
// rate limits of its own and no scruples.
type attacker struct {
	t   *testing.T
	h   host.Host
	key crypto.PrivKey
	ed  ed25519.PrivateKey
	ps  *pubsub.PubSub // its gossipsub router, made on first use (topic)
}

// newAttacker starts a hostile peer on loopback and connects it to every target.
func newAttacker(t *testing.T, targets ...*harness.Node) *attacker {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	raw, err := key.Raw()
	if err != nil {
		t.Fatal(err)
	}
	a := &attacker{t: t, h: h, key: key, ed: ed25519.PrivateKey(raw)}
	for _, n := range targets {
		a.connect(n)
	}
	return a
}

// connect dials n's loopback address.
func (a *attacker) connect(n *harness.Node) peer.ID {
	a.t.Helper()
	addr, err := ma.NewMultiaddr(n.P2PAddr())
	if err != nil {
		a.t.Fatal(err)
	}
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		a.t.Fatal(err)
	}
	if err := a.h.Connect(a.t.Context(), *info); err != nil {
		a.t.Fatalf("attacker connect to %s: %v", n.Name, err)
	}
	return info.ID
}

// peerOf returns n's peer ID.
func (a *attacker) peerOf(n *harness.Node) peer.ID {
	a.t.Helper()
	id, err := peer.Decode(n.Info().PeerID)
	if err != nil {
		a.t.Fatal(err)
	}
	return id
}

// ledger returns an ICP client paying from the attacker's key, minting it funds on replica.
func (a *attacker) ledger(replica *icptest.Sim, funds uint64) *icp.Client {
	a.t.Helper()
	c, err := icp.New(icp.Config{ReplicaURL: replica.URL(), LedgerID: icptest.LedgerID, FetchRootKey: true, Key: a.ed})
	if err != nil {
		a.t.Fatal(err)
	}
	if funds > 0 {
		replica.Mint(c.Principal(), funds)
	}
	return c
}
