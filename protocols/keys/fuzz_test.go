package keys

import (
	"bytes"
	"testing"

	"github.com/califusion/califusion/protocols/wire"
)

// roundTrip decodes b as a fresh M the way a kex.Answer handler (or a caller of Request) does;
// when it decodes, re-encoding must work and decode to a value that encodes the same (an empty
// byte string and an absent one are the same message: omitempty).
func roundTrip[M any](t *testing.T, b []byte) {
	var m M
	if wire.Unmarshal(b, &m) != nil {
		return
	}
	enc, err := wire.Marshal(&m)
	if err != nil {
		t.Fatalf("re-encode %T %+v: %v", m, m, err)
	}
	var again M
	if err := wire.Unmarshal(enc, &again); err != nil {
		t.Fatalf("decode re-encoded %T: %v", m, err)
	}
	if enc2, err := wire.Marshal(&again); err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("%T changed in a round trip: %+v, then %+v", m, m, again)
	}
}

func seeds(f *testing.F, msgs ...any) {
	for _, m := range msgs {
		b, err := wire.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x01, 0x5a, 0xff, 0xff, 0xff, 0xff}) // {1: a 4 GiB byte string}, truncated
}

// FuzzDeposit decodes arbitrary escrow messages as a coordinator does.
func FuzzDeposit(f *testing.F) {
	seeds(f, &Deposit{Manifest: []byte("manifest"), Key: make([]byte, 32)}, &Deposit{Manifest: []byte("manifest"), Share: make([]byte, 32), Index: 3})
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip[Deposit](t, b) })
}

// FuzzUnlock decodes arbitrary unlock messages as a coordinator does.
func FuzzUnlock(f *testing.F) {
	seeds(f, &Unlock{Model: make([]byte, 32), Ledger: "ryjl3-tyaaa-aaaaa-aaaba-cai", Block: 1 << 40, Payer: "aaaaa-aa"}, &Unlock{Model: []byte{1}})
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip[Unlock](t, b) })
}

// FuzzProbe decodes arbitrary probe messages as a coordinator does.
func FuzzProbe(f *testing.F) {
	seeds(f, &Probe{Model: make([]byte, 32)})
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip[Probe](t, b) })
}

// FuzzResult decodes arbitrary answers as a publisher or a trainer does.
func FuzzResult(f *testing.F) {
	seeds(f, &Result{Key: make([]byte, 32)}, &Result{Code: 1004, Message: "not paid"}, &Result{Share: make([]byte, 32), Index: 15}, &Result{Holds: HoldsShare})
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip[Result](t, b) })
}

// FuzzRoundShare decodes arbitrary round share requests as a coordinator does.
func FuzzRoundShare(f *testing.F) {
	seeds(f, &RoundShare{Model: make([]byte, 32)})
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip[RoundShare](t, b) })
}

// FuzzCoordinators decodes arbitrary coordinator updates as a coordinator does.
func FuzzCoordinators(f *testing.F) {
	seeds(f, &Coordinators{Update: []byte("signed update")}, &Coordinators{Update: []byte("u"), Root: []byte("signed root")})
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip[Coordinators](t, b) })
}
