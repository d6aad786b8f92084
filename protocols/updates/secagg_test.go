package updates

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/califusion/califusion/node/secagg"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// TestJoinSignature: a join opens for its signer only; a changed statement, signature or key
// does not open; a roster of joins opens only when every member's does, for its round and
// coordinator, with no trainer twice.
func TestJoinSignature(t *testing.T) {
	j, id := sampleJoin(t)
	if st, err := j.Open(id); err != nil || st.Trainer != id.String() {
		t.Fatalf("Open(signer) = %+v, %v", st, err)
	}
	_, other := sampleJoin(t)
	if _, err := j.Open(other); !errors.Is(err, ErrSignature) {
		t.Errorf("Open(another peer) = %v, want ErrSignature", err)
	}
	bad := *j
	bad.Sig = bytes.Clone(j.Sig)
	bad.Sig[0] ^= 1
	if _, err := bad.Open(id); !errors.Is(err, ErrSignature) {
		t.Errorf("Open(flipped signature) = %v, want ErrSignature", err)
	}
	var st JoinStatement
	wire.Unmarshal(j.Statement, &st)
	st.Keys.Seal = bytes.Repeat([]byte{9}, 32) // a coordinator substituting a key
	bad.Statement, _ = wire.Marshal(&st)
	bad.Sig = j.Sig
	if _, err := bad.Open(id); !errors.Is(err, ErrSignature) {
		t.Errorf("Open(substituted keys) = %v, want ErrSignature", err)
	}
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	if _, err := SignJoin(priv, &JoinStatement{Round: "r", Trainer: id.String(), Coordinator: id.String(), Keys: secagg.Keys{Seal: []byte{1}, Mask: []byte{2}}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("SignJoin(short keys) = %v, want ErrMalformed", err)
	}

	j2, _ := sampleJoinFor(t, id)
	ro := &Roster{Members: []Join{*j, *j2}, Params: secagg.DefaultParams(2), Dim: 3, Self: 0}
	if sts, err := ro.Open("00112233445566778899aabbccddeeff", id); err != nil || len(sts) != 2 {
		t.Errorf("Roster.Open = %v, %v", sts, err)
	}
	if _, err := ro.Open("ffffffffffffffffffffffffffffffff", id); !errors.Is(err, ErrSignature) {
		t.Errorf("Roster.Open(another round) = %v, want ErrSignature", err)
	}
	ro.Members[1] = *j
	if _, err := ro.Open("00112233445566778899aabbccddeeff", id); !errors.Is(err, ErrMalformed) {
		t.Errorf("Roster.Open(a trainer twice) = %v, want ErrMalformed", err)
	}
}

// TestDecodeParts: a message carries exactly one part; keepalives are recognised.
func TestDecodeParts(t *testing.T) {
	if !IsKeepalive([]byte{0xa0}) {
		t.Error("an empty map is not a keepalive")
	}
	j, _ := sampleJoin(t)
	b, _ := wire.Marshal(&Up{Join: j, Input: &InputHeader{Coords: 3}})
	if _, err := DecodeUp(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeUp(two parts) = %v, want ErrMalformed", err)
	}
	if _, err := DecodeDown([]byte{0xa0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeDown(keepalive) = %v, want ErrMalformed (callers skip keepalives first)", err)
	}
	b, _ = wire.Marshal(&Up{Input: &InputHeader{Coords: MaxDim + 2}})
	if _, err := DecodeUp(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeUp(input beyond MaxDim) = %v, want ErrMalformed", err)
	}
	b, _ = wire.Marshal(&Down{Unmask: &Unmask{Survivors: []int{-1}}})
	if _, err := DecodeDown(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeDown(negative index) = %v, want ErrMalformed", err)
	}
}
