package catalog

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/network"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

func TestFetchVerifiesEachManifest(t *testing.T) {
	mn, err := mocknet.FullMeshConnected(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	a, b := mn.Hosts()[0], mn.Hosts()[1]
	served := [][]byte{[]byte("ok one"), []byte("forged"), []byte("ok two"), bytes.Repeat([]byte("x"), MaxManifestSize+1)}
	Register(b, func(since time.Time, fn func([]byte) bool) error {
		for _, m := range served {
			if !fn(m) {
				break
			}
		}
		return nil
	}, slog.New(slog.DiscardHandler))
	var got []string
	acc, ref, _, err := Fetch(t.Context(), a, b.ID(), time.Time{}, func(m []byte) error {
		if !bytes.HasPrefix(m, []byte("ok")) {
			return errors.New("bad signature")
		}
		got = append(got, string(m))
		return nil
	})
	if err != nil || acc != 2 || ref != 1 {
		t.Fatalf("Fetch = %d accepted, %d refused, %v; want 2, 1, nil", acc, ref, err)
	}
	if got[0] != "ok one" || got[1] != "ok two" {
		t.Errorf("accepted %q, want the two valid manifests", got)
	}
}

func TestFetchRefusesOversizedFrame(t *testing.T) {
	mn, _ := mocknet.FullMeshConnected(2)
	t.Cleanup(func() { mn.Close() })
	a, b := mn.Hosts()[0], mn.Hosts()[1]
	b.SetStreamHandler(ID, func(s network.Stream) {
		var req Request
		wire.ReadFrame(s, MaxRequestSize, &req)
		wire.WriteRaw(s, make([]byte, MaxManifestSize+100))
		s.Close()
	})
	if _, _, _, err := Fetch(t.Context(), a, b.ID(), time.Time{}, func([]byte) error { return nil }); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Errorf("Fetch from a peer sending an oversized frame = %v, want ErrFrameTooLarge", err)
	}
}

func FuzzEntry(f *testing.F) {
	b, _ := wire.Marshal(&Entry{Manifest: []byte("m")})
	f.Add(b)
	f.Add([]byte{0xa1, 0x02, 0xf5})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Entry
		if wire.Unmarshal(b, &e) != nil {
			return
		}
		again, err := wire.Marshal(&e)
		if err != nil {
			t.Fatalf("Marshal(%+v) = %v", e, err)
		}
		var e2 Entry
		if err := wire.Unmarshal(again, &e2); err != nil || e2.Done != e.Done || !bytes.Equal(e2.Manifest, e.Manifest) {
			t.Fatalf("round trip of %+v = %+v, %v", e, e2, err)
		}
	})
}
