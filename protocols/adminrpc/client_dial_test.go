package adminrpc

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDialNoDaemon checks the two ways a client finds no daemon: no rpc.addr, and an rpc.addr
// a crashed daemon left behind (nothing listens at its address). Both are Unavailable, in one
// sentence that says what to do.
func TestDialNoDaemon(t *testing.T) {
	dir := t.TempDir()
	_, err := Dial(dir)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeUnavailable || !strings.Contains(e.Message, "no daemon is serving datadir") {
		t.Fatalf("Dial(no rpc.addr) = %v, want an Unavailable error saying no daemon serves the datadir", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the daemon is gone; its address file remains
	os.WriteFile(filepath.Join(dir, AddrFile), []byte(addr+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, TokenFile), []byte(testToken), 0o600)
	c, err := Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.NodeInfo(t.Context())
	want := "no daemon answers at " + addr + " (from " + filepath.Join(dir, AddrFile) + ", left by a daemon that did not stop cleanly?): start it with califusiond run"
	if !errors.As(err, &e) || e.Code != CodeUnavailable || e.Message != want {
		t.Errorf("NodeInfo on a stale rpc.addr = %v, want Unavailable %q", err, want)
	}
}
