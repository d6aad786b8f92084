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

// manifestBy signs a manifest for key k with priv.
func manifestBy(t *testing.T, priv crypto.PrivKey, k content.Key) []byte {
	t.Helper()
	kc := k.Commitment()
	m := &content.Manifest{Name: "m", Size: 1, ChunkSize: content.MinChunkSize, Chunks: 1, Root: make([]byte, 32),
		KeyCommitment: kc[:], Salt: make([]byte, content.SaltSize), Price: "1", Payee: content.Account{Owner: "aaaaa-aa"}, CreatedAt: time.Now().UnixMilli()}
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
	tests := []struct {
		name     string
		manifest []byte
		key      content.Key
		code     int
	}{
		{"key does not match the commitment", manifestBy(t, priv, k1), k2, adminrpc.CodeIntegrity},
		{"depositor is not the publisher", manifestBy(t, other, k1), k1, adminrpc.CodeIntegrity},
		{"manifest does not verify", []byte("garbage"), k1, adminrpc.CodeIntegrity},
		{"valid deposit", manifestBy(t, priv, k1), k1, 0},
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
}
