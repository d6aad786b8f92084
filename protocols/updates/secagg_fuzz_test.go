package updates

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/califusion/califusion/node/secagg"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// sampleJoin is a valid signed join, addressed to its signer, and the signer.
func sampleJoin(t testing.TB) (*Join, peer.ID) { return sampleJoinFor(t, "") }

// sampleJoinFor is a valid signed join addressed to coord (its signer when empty).
func sampleJoinFor(t testing.TB, coord peer.ID) (*Join, peer.ID) {
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(priv)
	if coord == "" {
		coord = id
	}
	j, err := SignJoin(priv, &JoinStatement{
		Round: "00112233445566778899aabbccddeeff", Trainer: id.String(), Coordinator: coord.String(),
		Keys: secagg.Keys{Seal: bytes.Repeat([]byte{1}, 32), Mask: bytes.Repeat([]byte{2}, 32)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return j, id
}

// roundTrip re-encodes a decoded message and decodes it again with decode: it must still pass.
func roundTrip[M any](t *testing.T, m *M, decode func([]byte) (*M, error)) {
	enc, err := wire.Marshal(m)
	if err != nil {
		t.Fatalf("re-encode %+v: %v", m, err)
	}
	if _, err := decode(enc); err != nil {
		t.Fatalf("a message that decoded does not decode again: %v", err)
	}
}

func seedUp(f *testing.F, ups ...*Up) {
	for _, u := range ups {
		b, _ := wire.Marshal(u)
		f.Add(b)
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x01, 0xa1, 0x01, 0x5a, 0xff, 0xff, 0xff, 0xff}) // {1: {1: a 4 GiB string}}, truncated
}

func seedDown(f *testing.F, downs ...*Down) {
	for _, d := range downs {
		b, _ := wire.Marshal(d)
		f.Add(b)
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x02, 0xa1, 0x01, 0x9a, 0xff, 0xff, 0xff, 0xff}) // {2: {1: an array of 4 G}}, truncated
}

// FuzzJoin decodes arbitrary Ups as a coordinator reads a session's first message and opens the
// join: what opens re-encodes and opens again, for the same trainer.
func FuzzJoin(f *testing.F) {
	j, _ := sampleJoin(f)
	seedUp(f, &Up{Join: j})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := DecodeUp(b)
		if err != nil || u.Join == nil {
			return
		}
		st, err := u.Join.Open("")
		if err != nil {
			return
		}
		roundTrip(t, u, DecodeUp)
		if st2, err := u.Join.Open(peer.ID("")); err != nil || st2.Trainer != st.Trainer {
			t.Fatalf("a join that opened opens as %+v, %v", st2, err)
		}
	})
}

// FuzzRoster decodes arbitrary Downs as a trainer reads a roster and opens it.
func FuzzRoster(f *testing.F) {
	j1, id := sampleJoin(f)
	j2, _ := sampleJoinFor(f, id)
	seedDown(f, &Down{Roster: &Roster{Members: []Join{*j1, *j2}, Params: secagg.DefaultParams(2), Dim: 10, Self: 1}})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDown(b)
		if err != nil || d.Roster == nil {
			return
		}
		if d.Roster.Self < 0 || d.Roster.Self >= len(d.Roster.Members) || len(d.Roster.Members) > MaxSecureTrainers {
			t.Fatalf("a roster that passed Check has index %d of %d members", d.Roster.Self, len(d.Roster.Members))
		}
		d.Roster.Open("00112233445566778899aabbccddeeff", id)
		roundTrip(t, d, DecodeDown)
	})
}

// FuzzShares decodes arbitrary Ups and Downs holding shares.
func FuzzShares(f *testing.F) {
	s := &Shares{Sealed: []secagg.Sealed{{From: 0, To: 1, Box: make([]byte, 80)}}}
	seedUp(f, &Up{Shares: s})
	seedDown(f, &Down{Shares: s})
	f.Fuzz(func(t *testing.T, b []byte) {
		if u, err := DecodeUp(b); err == nil && u.Shares != nil {
			if len(u.Shares.Sealed) > MaxSecureTrainers {
				t.Fatalf("%d shares passed Check", len(u.Shares.Sealed))
			}
			roundTrip(t, u, DecodeUp)
		}
		if d, err := DecodeDown(b); err == nil && d.Shares != nil {
			roundTrip(t, d, DecodeDown)
		}
	})
}

// FuzzUnmask decodes arbitrary Downs holding an unmask request.
func FuzzUnmask(f *testing.F) {
	seedDown(f, &Down{Unmask: &Unmask{Survivors: []int{0, 1, 2}, Dropped: []int{3}}})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDown(b)
		if err != nil || d.Unmask == nil {
			return
		}
		for _, i := range append(append([]int{}, d.Unmask.Survivors...), d.Unmask.Dropped...) {
			if i < 0 || i >= MaxSecureTrainers {
				t.Fatalf("index %d passed Check", i)
			}
		}
		roundTrip(t, d, DecodeDown)
	})
}

// FuzzReveals decodes arbitrary Ups holding reveals (and inputs' headers).
func FuzzReveals(f *testing.F) {
	seedUp(f, &Up{Reveals: &Reveals{Reveals: []secagg.Reveal{{Of: 1, Share: make([]byte, 32)}}}}, &Up{Input: &InputHeader{Coords: 11}})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := DecodeUp(b)
		if err != nil {
			return
		}
		if u.Reveals != nil && len(u.Reveals.Reveals) > MaxSecureTrainers {
			t.Fatalf("%d reveals passed Check", len(u.Reveals.Reveals))
		}
		if u.Input != nil && (u.Input.Coords == 0 || u.Input.Coords > MaxDim+1) {
			t.Fatalf("an input of %d coordinates passed Check", u.Input.Coords)
		}
		roundTrip(t, u, DecodeUp)
	})
}

// FuzzOutcome decodes arbitrary Downs holding an outcome.
func FuzzOutcome(f *testing.F) {
	seedDown(f, &Down{Outcome: &Outcome{Contributed: true, NewModel: make([]byte, 32), Contributors: []string{"a"}}})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDown(b)
		if err != nil || d.Outcome == nil {
			return
		}
		roundTrip(t, d, DecodeDown)
	})
}
