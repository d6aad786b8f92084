package updates

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

func TestSubmitOverSession(t *testing.T) {
	mn, err := mocknet.FullMeshConnected(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	a, b := mn.Hosts()[0], mn.Hosts()[1]
	srv := kex.NewServer(t.Context(), b, slog.New(slog.DiscardHandler))
	var seen peer.ID
	Serve(srv, PurposeSubmit, 8<<20, func(ctx context.Context, from peer.ID, s *Submit) *Receipt {
		seen = from
		if err := s.Verify(); err != nil {
			return &Receipt{Code: 1005, Message: err.Error()}
		}
		if s.Samples == 0 {
			return &Receipt{Code: 1007, Message: "update rejected", Reason: "sample_count"}
		}
		return &Receipt{Norm: 1.5, Anchor: "califusion/anchor/v1/x"}
	})
	update := make([]byte, 3<<20) // several session frames
	update[12345] = 7
	r, err := Request(t.Context(), a, b.ID(), PurposeSubmit, NewSubmit("r1", 10, update))
	if err != nil || r.Norm != 1.5 || r.Anchor == "" || seen != a.ID() {
		t.Fatalf("Request = %+v, %v (server saw %s)", r, err, seen)
	}
	_, err = Request(t.Context(), a, b.ID(), PurposeSubmit, NewSubmit("r1", 0, update))
	var refusal *Error
	if !errors.As(err, &refusal) || refusal.Code != 1007 || refusal.Reason != "sample_count" {
		t.Errorf("rejected submission = %v, want an *Error with code 1007 and its reason", err)
	}
	tampered := NewSubmit("r1", 10, update)
	tampered.Update[0] ^= 1
	if _, err = Request(t.Context(), a, b.ID(), PurposeSubmit, tampered); !errors.As(err, &refusal) || refusal.Code != 1005 {
		t.Errorf("submission whose bytes do not match its hash = %v, want 1005", err)
	}
	if _, err = Request(t.Context(), a, b.ID(), PurposeSubmit, NewSubmit("r1", 10, make([]byte, 9<<20))); err == nil {
		t.Errorf("a submission over the server's cap was answered")
	}
	if _, err = Request(t.Context(), a, b.ID(), PurposeSubmit, []string{"not", "a", "submit"}); !errors.As(err, &refusal) || refusal.Code != -32602 {
		t.Errorf("malformed submission = %v, want -32602", err)
	}
}

// FuzzSubmit decodes arbitrary session messages as a coordinator does.
func FuzzSubmit(f *testing.F) {
	good, _ := wire.Marshal(NewSubmit("r", 3, []byte("safetensors")))
	f.Add(good)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Submit
		if wire.Unmarshal(b, &s) != nil {
			return
		}
		if s.Verify() == nil {
			again := NewSubmit(s.Round, s.Samples, s.Update)
			if string(again.SHA256) != string(s.SHA256) {
				t.Fatalf("a verified submission's hash differs from its bytes' hash")
			}
		}
	})
}

// FuzzReceipt decodes arbitrary answers as a trainer does.
func FuzzReceipt(f *testing.F) {
	good, _ := wire.Marshal(&Receipt{Code: 1007, Reason: "norm", Norm: 3})
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Receipt
		if wire.Unmarshal(b, &r) != nil {
			return
		}
		if _, err := wire.Marshal(&r); err != nil {
			t.Fatalf("re-encode a decoded receipt: %v", err)
		}
	})
}
