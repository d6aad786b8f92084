package secagg

import (
	"encoding/binary"
	"testing"
)

// FuzzOpenSealed feeds arbitrary boxes, senders and recipients to a client's MaskedInput and to
// open: never a panic, and only a genuine box opens.
func FuzzOpenSealed(f *testing.F) {
	fx := newFixture(f, smallParams, 5, 1)
	for _, s := range fx.in[1] {
		f.Add(s.From, s.To, s.Box)
	}
	f.Add(0, 1, []byte{})
	f.Add(-1, 1<<40, make([]byte, SealedSize))
	f.Fuzz(func(t *testing.T, from, to int, box []byte) {
		s := Sealed{From: from, To: to, Box: box}
		c := fx.clients[1]
		if a := placeOf(c.nbrs, from); a >= 0 {
			if _, err := open(c.openKeys[a], fx.round, s); err == nil && !genuine(fx.in[1], s) {
				t.Fatalf("open accepted a forged box from %d to %d", from, to)
			}
		}
		_, err := c.MaskedInput([]Sealed{s}, fx.xs[1], 1)
		if err == nil {
			if !genuine(fx.in[1], s) {
				t.Fatalf("MaskedInput accepted a forged box from %d to %d", from, to)
			}
			fx = newFixture(t, smallParams, 5, 1) // the client moved on: a fresh one
		}
	})
}

// genuine reports whether s is one of the routed boxes.
func genuine(in []Sealed, s Sealed) bool {
	for _, g := range in {
		if g.From == s.From && g.To == s.To && string(g.Box) == string(s.Box) {
			return true
		}
	}
	return false
}

// FuzzServer drives a server with a script of arbitrary calls (AddShares with real or mangled
// boxes, SharesFor, AddInput of any length, Unmasking, AddReveals, Sum): never a panic.
func FuzzServer(f *testing.F) {
	fx := newFixture(f, smallParams, 5, 2)
	f.Add([]byte{0, 0, 0, 1, 0, 2, 1, 0, 2, 0, 5, 2, 1, 5, 3, 4, 0, 3, 5})
	f.Add([]byte{2, 7, 9, 3, 4, 4, 4, 5})
	f.Fuzz(func(t *testing.T, script []byte) {
		srv, err := NewServer(fx.p, fx.round, fx.roster, fixDim)
		if err != nil {
			t.Fatal(err)
		}
		next := func() int {
			if len(script) == 0 {
				return 0
			}
			b := script[0]
			script = script[1:]
			return int(int8(b))
		}
		for len(script) > 0 {
			switch op := next() & 7; op {
			case 0: // real shares of a client, maybe mangled
				i := next() & 7
				mangle := next()
				var sealed []Sealed
				if i < len(fx.sealed) {
					for _, s := range fx.sealed[i] {
						sealed = append(sealed, Sealed{From: s.From, To: s.To, Box: s.Box})
					}
				}
				if len(sealed) > 0 && mangle != 0 {
					k := (mangle & 0x7f) % len(sealed)
					switch mangle & 3 {
					case 0:
						sealed[k].To = next()
					case 1:
						sealed[k].From = next()
					case 2:
						sealed[k].Box = sealed[k].Box[:(mangle&0x7f)%(len(sealed[k].Box)+1)]
					case 3:
						sealed = sealed[k:]
					}
				}
				_ = srv.AddShares(next(), sealed)
			case 1:
				_ = srv.SharesFor(next())
			case 2:
				y := make([]uint64, next()&15)
				for c := range y {
					y[c] = uint64(next())
				}
				_ = srv.AddInput(next(), y)
			case 3:
				_, _, _ = srv.Unmasking()
			case 4:
				rs := make([]Reveal, next()&7)
				for a := range rs {
					size := SecretSize
					if l := next(); l&1 == 1 {
						size = l & 63
					}
					sh := make([]byte, size)
					if size >= 2 {
						binary.LittleEndian.PutUint16(sh, uint16(next()))
					}
					rs[a] = Reveal{Of: next(), Share: sh}
				}
				_ = srv.AddReveals(next(), rs)
			case 5:
				_, _ = srv.Sum()
			case 6:
				_ = srv.Neighbours(next())
			case 7:
				_ = srv.Shared(next())
			}
		}
	})
}
