package announce

import (
	"errors"
	"math"
	"testing"
)

func strategyRound(r *Round) *Round {
	r.Strategy, r.ServerLR, r.Momentum, r.Beta2, r.Tau, r.ProxMu = "fedadam", 0.5, 0.9, 0.99, 0.03, 0.01
	return r
}

func TestRoundStrategyRoundTripAndChecks(t *testing.T) {
	coord := newPeer(t)
	b, err := strategyRound(goodRound(coord)).Encode()
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeRound(b, coord)
	if err != nil || r.Strategy != "fedadam" || r.ServerLR != 0.5 || r.Momentum != 0.9 || r.Beta2 != 0.99 || r.Tau != 0.03 || r.ProxMu != 0.01 {
		t.Fatalf("DecodeRound = %+v, %v; want the strategy fields back", r, err)
	}
	plain, _ := goodRound(coord).Encode()
	if len(plain) >= len(b) {
		t.Error("a round without a strategy is not smaller: the new fields are not omitted when empty")
	}
	bad := map[string]func(r *Round){
		"unknown strategy":   func(r *Round) { r.Strategy = "sgd" },
		"NaN server_lr":      func(r *Round) { r.ServerLR = math.NaN() },
		"negative server_lr": func(r *Round) { r.ServerLR = -1 },
		"momentum 1":         func(r *Round) { r.Momentum = 1 },
		"beta2 above 1":      func(r *Round) { r.Beta2 = 1.5 },
		"negative tau":       func(r *Round) { r.Tau = -1 },
		"negative prox_mu":   func(r *Round) { r.ProxMu = -1 },
		"infinite prox_mu":   func(r *Round) { r.ProxMu = math.Inf(1) },
		"beta2 of fedavgm":   func(r *Round) { r.Strategy = "fedavgm" },
	}
	for name, mutate := range bad {
		r := strategyRound(goodRound(coord))
		mutate(r)
		if _, err := r.Encode(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Encode = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecodeRoundStrategy(f *testing.F) {
	coord := newPeer(f)
	good, _ := strategyRound(goodRound(coord)).Encode()
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRound(b, coord)
		if err != nil {
			return
		}
		if err := r.Optimizer().Check(); err != nil {
			t.Fatalf("a decoded round's strategy fails its check: %v", err)
		}
		if _, err := r.Encode(); err != nil {
			t.Fatalf("Encode(DecodeRound(%x)) = %v", b, err)
		}
	})
}
