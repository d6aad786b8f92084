package announce

import (
	"errors"
	"github.com/califusion/califusion/protocols/wire"
	"strings"
	"testing"
)

func TestPresenceRoundTrip(t *testing.T) {
	in := &Presence{Roles: []string{"trainer", "coordinator"}, Version: "v1", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, SentAt: 1700000000000}
	b, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodePresence(b)
	if err != nil {
		t.Fatalf("DecodePresence(Encode(%+v)) = %v", in, err)
	}
	if out.Version != in.Version || len(out.Roles) != 2 || out.SentAt != in.SentAt {
		t.Errorf("DecodePresence = %+v, want %+v", out, in)
	}
}

func TestPresenceRejects(t *testing.T) {
	enc := func(p Presence) []byte { b, _ := wire.Marshal(p); return b }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"garbage", []byte{0xff, 0x00}, ErrMalformed},
		{"no roles", enc(Presence{SentAt: 1}), ErrMalformed},
		{"unknown role", enc(Presence{Roles: []string{"miner"}, SentAt: 1}), ErrMalformed},
		{"no time", enc(Presence{Roles: []string{"trainer"}}), ErrMalformed},
		{"huge", make([]byte, MaxPresenceSize+1), ErrTooLarge},
		{"long addr", enc(Presence{Roles: []string{"trainer"}, SentAt: 1, Addrs: []string{strings.Repeat("a", 300)}}), ErrMalformed},
		{"unknown field", func() []byte { b, _ := wire.Marshal(map[int]any{1: []string{"trainer"}, 4: 1, 9: "x"}); return b }(), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodePresence(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("DecodePresence(%x) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func FuzzDecodePresence(f *testing.F) {
	seed, _ := (&Presence{Roles: []string{"publisher"}, Version: "v", SentAt: 5}).Encode()
	f.Add(seed)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePresence(b)
		if err != nil {
			return
		}
		again, err := p.Encode()
		if err != nil {
			t.Fatalf("Encode(DecodePresence(%x)) = %v", b, err)
		}
		if _, err := DecodePresence(again); err != nil {
			t.Fatalf("DecodePresence(re-encoded %x) = %v", again, err)
		}
	})
}
