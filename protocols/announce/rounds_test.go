package announce

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func newPeer(t testing.TB) peer.ID {
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPublicKey(pub)
	return id
}

func goodRound(coord peer.ID) *Round {
	return &Round{ID: "0123456789abcdef0123456789abcdef", Model: make([]byte, 32), Coordinator: coord.String(), MinUpdates: 2,
		Deadline: 2000, Rule: "fedavg", State: RoundOpen, Seq: 1, OpenedAt: 1000}
}

func TestRoundRoundTripAndChecks(t *testing.T) {
	coord, other := newPeer(t), newPeer(t)
	b, err := goodRound(coord).Encode()
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeRound(b, coord)
	if err != nil || r.ID != goodRound(coord).ID || r.MinUpdates != 2 {
		t.Fatalf("DecodeRound = %+v, %v", r, err)
	}
	if _, err := DecodeRound(b, other); !errors.Is(err, ErrMalformed) {
		t.Errorf("a round relayed as authored by another peer = %v, want ErrMalformed", err)
	}
	bad := []func(r *Round){
		func(r *Round) { r.ID = "XYZ" },
		func(r *Round) { r.Model = r.Model[:31] },
		func(r *Round) { r.MinUpdates = 0 },
		func(r *Round) { r.Deadline = 0 },
		func(r *Round) { r.Rule = "mean" },
		func(r *Round) { r.ClipNorm = -1 },
		func(r *Round) { r.ClipMode = "cut" },
		func(r *Round) { r.State = "paused" },
		func(r *Round) { r.NewModel = []byte{1} },
		func(r *Round) { r.Coordinator = "nobody" },
	}
	for i, mutate := range bad {
		r := goodRound(coord)
		mutate(r)
		if _, err := r.Encode(); !errors.Is(err, ErrMalformed) {
			t.Errorf("case %d: Encode = %v, want ErrMalformed", i, err)
		}
	}
	if _, err := DecodeRound(make([]byte, MaxRoundSize+1), coord); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized round = %v, want ErrTooLarge", err)
	}
}

func FuzzDecodeRound(f *testing.F) {
	coord := newPeer(f)
	good, _ := goodRound(coord).Encode()
	f.Add(good)
	f.Add([]byte{0xa0})
	tagged := goodRound(coord)
	tagged.Campaign = &CampaignTag{ID: "00112233aabbccdd", Index: 1, Rounds: 3, Reward: "5"}
	withTag, _ := tagged.Encode()
	f.Add(withTag)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRound(b, coord)
		if err != nil {
			return
		}
		again, err := r.Encode()
		if err != nil {
			t.Fatalf("Encode(DecodeRound(%x)) = %v", b, err)
		}
		if _, err := DecodeRound(again, coord); err != nil {
			t.Fatalf("DecodeRound(re-encoded) = %v", err)
		}
	})
}
