package node

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/califusion/califusion/config"
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
