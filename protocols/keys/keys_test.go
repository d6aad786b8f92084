package keys

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

func TestRequestServe(t *testing.T) {
	mn, err := mocknet.FullMeshConnected(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	a, b := mn.Hosts()[0], mn.Hosts()[1]
	srv := kex.NewServer(t.Context(), b, slog.New(slog.DiscardHandler))
	var seen peer.ID
	ks := NewServer(srv, Handlers{Unlock: func(ctx context.Context, from peer.ID, u *Unlock) *Result {
		seen = from
		if u.Block == 7 {
			return &Result{Key: []byte("k")}
		}
		return &Result{Code: 1004, Message: "block already used"}
	}})
	res, err := Request(t.Context(), a, b.ID(), PurposeUnlock, &Unlock{Model: make([]byte, 32), Block: 7})
	if err != nil || string(res.Key) != "k" || seen != a.ID() {
		t.Fatalf("Request = %+v, %v (server saw %s); want the key and the authenticated caller %s", res, err, seen, a.ID())
	}
	_, err = Request(t.Context(), a, b.ID(), PurposeUnlock, &Unlock{Model: make([]byte, 32), Block: 8})
	var refusal *Error
	if !errors.As(err, &refusal) || refusal.Code != 1004 {
		t.Errorf("Request(refused) = %v, want an *Error with code 1004", err)
	}
	// A message of the wrong shape is refused with invalid params, not a crash.
	_, err = Request(t.Context(), a, b.ID(), PurposeUnlock, map[int]string{9: "x"})
	if !errors.As(err, &refusal) || refusal.Code != -32602 {
		t.Errorf("Request(malformed) = %v, want code -32602", err)
	}
	// No escrow handler on this server.
	if _, err := Request(t.Context(), a, b.ID(), PurposeEscrow, &Deposit{}); err == nil {
		t.Errorf("Request(unhandled purpose) = nil error")
	}
	// Close removes the server's purposes: unlock is no longer served.
	ks.Close()
	ks.Close() // idempotent
	if _, err := Request(t.Context(), a, b.ID(), PurposeUnlock, &Unlock{Model: make([]byte, 32), Block: 7}); err == nil {
		t.Errorf("Request after the server's Close = nil error, want the purpose unserved")
	}
}

func TestMemoBindsLineageAndTrainer(t *testing.T) {
	l1, l2 := [32]byte{1}, [32]byte{2}
	p1, p2 := peer.ID("trainer-one"), peer.ID("trainer-two")
	if string(Memo(l1, p1)) == string(Memo(l2, p1)) || string(Memo(l1, p1)) == string(Memo(l1, p2)) {
		t.Errorf("Memo does not change with the lineage or the trainer")
	}
	if len(Memo(l1, p1)) != 32 {
		t.Errorf("Memo is %d bytes, want 32", len(Memo(l1, p1)))
	}
}
