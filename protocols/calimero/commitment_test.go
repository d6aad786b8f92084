package calimero

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestCommitmentSignOpen(t *testing.T) {
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	c := &Commitment{Kind: KindUpdate, Round: "r1", Model: make([]byte, 32), Hashes: [][]byte{bytes.Repeat([]byte{1}, 32)}, Samples: 90, CreatedAt: 1}
	rec, err := SignCommitment(c, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenCommitment(rec)
	if err != nil || got.Samples != 90 || got.Round != "r1" {
		t.Fatalf("OpenCommitment = %+v, %v", got, err)
	}
	// Change a field and keep the signature: refused.
	var s signedCommitment
	wire.Unmarshal(rec, &s)
	var body Commitment
	wire.Unmarshal(s.Body, &body)
	body.Samples = 9000
	s.Body, _ = wire.Marshal(&body)
	forged, _ := wire.Marshal(s)
	if _, err := OpenCommitment(forged); !errors.Is(err, ErrCommitment) {
		t.Errorf("OpenCommitment(samples changed) = %v, want ErrCommitment", err)
	}
	if _, err := SignCommitment(&Commitment{Kind: "other", Round: "r", Model: make([]byte, 32), Hashes: [][]byte{make([]byte, 32)}, CreatedAt: 1}, key); !errors.Is(err, ErrCommitment) {
		t.Errorf("SignCommitment(bad kind) = %v, want ErrCommitment", err)
	}
}

// A round commitment carries the round's body, within MaxCommitmentBody; without one it is
// refused, as is one too large.
func TestRoundCommitmentBody(t *testing.T) {
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	round := func(body []byte) *Commitment {
		return &Commitment{Kind: KindRound, Round: "r", Model: make([]byte, 32), Hashes: [][]byte{make([]byte, 32)}, CreatedAt: 1, Body: body}
	}
	rec, err := SignCommitment(round([]byte("the round")), key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := OpenCommitment(rec); err != nil || string(got.Body) != "the round" {
		t.Fatalf("OpenCommitment(round) = %+v, %v; want its body back", got, err)
	}
	for name, body := range map[string][]byte{"no body": nil, "too large": make([]byte, MaxCommitmentBody+1)} {
		if _, err := SignCommitment(round(body), key); !errors.Is(err, ErrCommitment) {
			t.Errorf("SignCommitment(round, %s) = %v, want ErrCommitment", name, err)
		}
	}
}

func FuzzOpenCommitment(f *testing.F) {
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	rec, _ := SignCommitment(&Commitment{Kind: KindAggregate, Round: "r", Model: make([]byte, 32), Hashes: [][]byte{make([]byte, 32)}, CreatedAt: 1}, key)
	f.Add(rec)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := OpenCommitment(b)
		if err == nil && c.check() != nil {
			t.Fatalf("OpenCommitment accepted an invalid commitment %+v", c)
		}
	})
}
