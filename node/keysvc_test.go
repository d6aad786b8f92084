package node

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/keys"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// startNode runs a node in-process on loopback.
func startNode(t *testing.T, roles ...string) *Node {
	t.Helper()
	cfg := config.Default()
	if err := cfg.Apply(config.Overrides{Roles: roles, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, RPCAddr: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "node")
	if _, err := Init(dir, cfg); err != nil {
		t.Fatal(err)
	}
	dd, err := OpenDatadir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(cfg, dd, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); dd.Close() })
	return n
}

// manifestBy signs a lineage root for key k with priv, naming coords as its coordinators.
func manifestBy(t *testing.T, priv crypto.PrivKey, k content.Key, coords ...peer.ID) []byte {
	t.Helper()
	kc := k.Commitment()
	m := &content.Manifest{Name: "m", Size: 1, ChunkSize: content.MinChunkSize, Chunks: 1, Root: make([]byte, 32),
		KeyCommitment: kc[:], Salt: make([]byte, content.SaltSize), Price: "1", Payee: content.Account{Owner: "aaaaa-aa"}, CreatedAt: time.Now().UnixMilli()}
	for _, c := range coords {
		m.Coordinators = append(m.Coordinators, []byte(c))
	}
	signed, _, err := content.Sign(m, priv)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func TestDepositChecks(t *testing.T) {
	coord := startNode(t, config.RoleCoordinator)
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Connect(t.Context(), peer.AddrInfo{ID: coord.host.ID(), Addrs: coord.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	k1, _ := content.NewKey()
	k2, _ := content.NewKey()
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	deposit := func(manifest []byte, k content.Key) error {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := keys.Request(ctx, h, coord.host.ID(), keys.PurposeEscrow, &keys.Deposit{Manifest: manifest, Key: k[:]})
		return err
	}
	here := coord.host.ID()
	k3, _ := content.NewKey()
	me := signer{priv, h.ID()}
	stranger := newSigner(t)
	validRoot := manifestBy(t, priv, k1, here)
	rootID := content.ModelID(sha(validRoot))
	var nowhere content.ModelID
	rand.Read(nowhere[:])
	tests := []struct {
		name     string
		manifest []byte
		key      content.Key
		code     int
	}{
		{"key does not match the commitment", manifestBy(t, priv, k1, here), k2, adminrpc.CodeIntegrity},
		{"depositor is not the publisher", manifestBy(t, other, k1, here), k1, adminrpc.CodeIntegrity},
		{"manifest does not verify", []byte("garbage"), k1, adminrpc.CodeIntegrity},
		{"root that does not name this coordinator", manifestBy(t, priv, k1, stranger.id), k1, adminrpc.CodeRole},
		{"root that names no coordinator", manifestBy(t, priv, k1), k1, adminrpc.CodeRole},
		{"valid deposit", validRoot, k1, 0},
		{"child whose parent is unknown", first(me.sign(t, version{parent: &nowhere, lineage: &nowhere, key: k3})), k3, adminrpc.CodeNotFound},
		{"child claiming another's lineage", first(me.sign(t, version{parent: &rootID, lineage: &nowhere, key: k3})), k3, adminrpc.CodeIntegrity},
	}
	for _, tt := range tests {
		err := deposit(tt.manifest, tt.key)
		var refusal *keys.Error
		switch {
		case tt.code == 0 && err != nil:
			t.Errorf("%s: deposit = %v, want success", tt.name, err)
		case tt.code != 0 && (!errors.As(err, &refusal) || refusal.Code != tt.code):
			t.Errorf("%s: deposit = %v, want code %d", tt.name, err, tt.code)
		}
	}
	recs, _ := coord.models.all()
	held := 0
	for _, r := range recs {
		if k, err := coord.models.keys.get(r.ID); err == nil {
			if k != k1 {
				t.Errorf("coordinator holds key %x for %x, want the deposited one", k[:4], r.ID[:4])
			}
			held++
		}
	}
	if held != 1 {
		t.Errorf("coordinator holds %d keys, want exactly the one valid deposit", held)
	}
	// The same peer soon runs out of deposits.
	limited := false
	for range depositBurst + 1 {
		var refusal *keys.Error
		if err := deposit(validRoot, k1); errors.As(err, &refusal) && refusal.Code == adminrpc.CodeUnavailable {
			limited = true
			break
		}
	}
	if !limited {
		t.Errorf("%d deposits in a row were never rate-limited", depositBurst+1)
	}
}

// A stranger's forged version of a deposited lineage is refused, a named coordinator's version is
// kept, and one publisher escrows at most maxEscrowedRoots lineages.
func TestDepositLineageRules(t *testing.T) {
	oldCap, oldBurst := maxEscrowedRoots, depositBurst
	maxEscrowedRoots, depositBurst = 2, 100
	t.Cleanup(func() { maxEscrowedRoots, depositBurst = oldCap, oldBurst })
	coord := startNode(t, config.RoleCoordinator)
	here := coord.host.ID()
	connect := func(s signer) func([]byte, content.Key) error {
		h, err := libp2p.New(libp2p.Identity(s.priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		if err := h.Connect(t.Context(), peer.AddrInfo{ID: here, Addrs: coord.host.Addrs()}); err != nil {
			t.Fatal(err)
		}
		return func(m []byte, k content.Key) error {
			_, err := keys.Request(t.Context(), h, here, keys.PurposeEscrow, &keys.Deposit{Manifest: m, Key: k[:]})
			return err
		}
	}
	pub, other, attacker := newSigner(t), newSigner(t), newSigner(t)
	depPub, depOther, depAttacker := connect(pub), connect(other), connect(attacker)
	k, _ := content.NewKey()
	rootSigned, root := pub.sign(t, version{coords: []peer.ID{here, other.id}, key: k})
	if err := depPub(rootSigned, k); err != nil {
		t.Fatal(err)
	}
	codeOf := func(err error) int {
		var refusal *keys.Error
		if errors.As(err, &refusal) {
			return refusal.Code
		}
		return 0
	}
	forged, forgedID := attacker.sign(t, version{parent: &root, lineage: &root, price: "1", key: k})
	if err := depAttacker(forged, k); codeOf(err) != adminrpc.CodeIntegrity {
		t.Errorf("deposit of a stranger's version of the lineage = %v, want code %d", err, adminrpc.CodeIntegrity)
	}
	if coord.models.known(forgedID) {
		t.Errorf("the forged version is in the coordinator's catalog")
	}
	k2, _ := content.NewKey()
	agg, aggID := other.sign(t, version{parent: &root, lineage: &root, key: k2})
	if err := depOther(agg, k2); err != nil {
		t.Errorf("deposit of a version by a named coordinator = %v, want success", err)
	}
	if r, err := coord.models.get(aggID); err != nil || r.Lineage() != root {
		t.Errorf("named coordinator's version = %v, %v; want lineage %x", r, err, root)
	}
	k3, _ := content.NewKey()
	second := first(pub.sign(t, version{coords: []peer.ID{here}, key: k3}))
	if err := depPub(second, k3); err != nil {
		t.Errorf("deposit of a second lineage = %v", err)
	}
	if err := depPub(second, k3); err != nil {
		t.Errorf("deposit of the second lineage again = %v, want success (not counted twice)", err)
	}
	third := first(pub.sign(t, version{coords: []peer.ID{here}, key: k3}))
	if err := depPub(third, k3); codeOf(err) != adminrpc.CodeConflict {
		t.Errorf("deposit of a third lineage with a cap of 2 = %v, want code %d", err, adminrpc.CodeConflict)
	}
}
