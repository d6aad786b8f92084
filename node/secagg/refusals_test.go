package secagg

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/califusion/califusion/node/internal/shamir"
)

// fixture is a round set up to the point every client has its routed shares.
type fixture struct {
	p       Params
	round   []byte
	clients []*Client
	roster  []Keys
	srv     *Server
	sealed  [][]Sealed // sealed[i]: client i's ShareKeys output
	in      [][]Sealed // in[i]: SharesFor(i)
	xs      [][]float32
}

const fixDim = 4

// newFixture sets up a round of n clients with params p up to routed shares.
func newFixture(t testing.TB, p Params, n int, seed uint64) *fixture {
	t.Helper()
	f := &fixture{p: p, round: []byte("round-fixture"), clients: make([]*Client, n), roster: make([]Keys, n), sealed: make([][]Sealed, n), in: make([][]Sealed, n), xs: make([][]float32, n)}
	rnd := testRand(seed)
	for i := range n {
		c, err := NewClient(p, f.round, rnd)
		if err != nil {
			t.Fatal(err)
		}
		f.clients[i], f.roster[i] = c, c.Keys()
		f.xs[i] = []float32{float32(i), 0.5, -0.25, 1}
	}
	var err error
	if f.srv, err = NewServer(p, f.round, f.roster, fixDim); err != nil {
		t.Fatal(err)
	}
	for i, c := range f.clients {
		if f.sealed[i], err = c.ShareKeys(f.roster, i); err != nil {
			t.Fatal(err)
		}
		if err := f.srv.AddShares(i, f.sealed[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range f.clients {
		f.in[i] = f.srv.SharesFor(i)
	}
	return f
}

// inputs sends every client's masked input.
func (f *fixture) inputs(t testing.TB) {
	t.Helper()
	for i, c := range f.clients {
		y, err := c.MaskedInput(f.in[i], f.xs[i], 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.srv.AddInput(i, y); err != nil {
			t.Fatal(err)
		}
	}
}

// wantErr fails unless err wraps want.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v, want %v", what, err, want)
	}
}

var smallParams = Params{Neighbours: 0, Threshold: 3, Clip: 1, Bits: 16, MaxWeight: 10} // n = 5: k = 4

func TestServerRefusesInputs(t *testing.T) {
	f := newFixture(t, smallParams, 5, 1)
	y, err := f.clients[0].MaskedInput(f.in[0], f.xs[0], 1)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "AddInput(short)", f.srv.AddInput(0, y[:fixDim]), ErrMessage)
	wantErr(t, "AddInput(long)", f.srv.AddInput(0, append(slices.Clone(y), 0)), ErrMessage)
	wantErr(t, "AddInput(outside)", f.srv.AddInput(7, y), ErrMessage)
	if err := f.srv.AddInput(0, y); err != nil {
		t.Fatalf("AddInput(0) = %v", err)
	}
	wantErr(t, "AddInput(0) twice", f.srv.AddInput(0, y), ErrDuplicate)
	wantErr(t, "AddShares after input", f.srv.AddShares(1, f.sealed[1]), ErrPhase)
	for i := 1; i < 4; i++ {
		y, _ := f.clients[i].MaskedInput(f.in[i], f.xs[i], 1)
		if err := f.srv.AddInput(i, y); err != nil {
			t.Fatal(err)
		}
	}
	surv, drop, err := f.srv.Unmasking()
	if err != nil || !slices.Equal(surv, []int{0, 1, 2, 3}) || !slices.Equal(drop, []int{4}) {
		t.Fatalf("Unmasking() = %v, %v, %v, want [0 1 2 3] [4]", surv, drop, err)
	}
	y4, _ := f.clients[4].MaskedInput(f.in[4], f.xs[4], 1)
	wantErr(t, "AddInput after Unmasking", f.srv.AddInput(4, y4), ErrPhase)
}

func TestServerRefusesShares(t *testing.T) {
	f := newFixture(t, smallParams, 5, 2)
	srv, err := NewServer(f.p, f.round, f.roster, fixDim)
	if err != nil {
		t.Fatal(err)
	}
	good := f.sealed[0]
	mod := func(fn func([]Sealed) []Sealed) []Sealed {
		c := make([]Sealed, len(good))
		for a, s := range good {
			c[a] = Sealed{From: s.From, To: s.To, Box: bytes.Clone(s.Box)}
		}
		return fn(c)
	}
	cases := []struct {
		name string
		from int
		s    []Sealed
		want error
	}{
		{"wrong From", 0, mod(func(s []Sealed) []Sealed { s[1].From = 2; return s }), ErrMessage},
		{"to itself", 0, mod(func(s []Sealed) []Sealed { s[1].To = 0; return s }), ErrMessage},
		{"to outside", 0, mod(func(s []Sealed) []Sealed { s[1].To = 9; return s }), ErrMessage},
		{"twice to one", 0, mod(func(s []Sealed) []Sealed { s[1].To = s[0].To; return s }), ErrDuplicate},
		{"one missing", 0, mod(func(s []Sealed) []Sealed { return s[1:] }), ErrMessage},
		{"short box", 0, mod(func(s []Sealed) []Sealed { s[2].Box = s[2].Box[:10]; return s }), ErrMessage},
		{"as another client", 1, good, ErrMessage},
		{"from outside", -1, good, ErrMessage},
	}
	for _, tc := range cases {
		wantErr(t, "AddShares("+tc.name+")", srv.AddShares(tc.from, tc.s), tc.want)
	}
	if err := srv.AddShares(0, good); err != nil {
		t.Fatalf("AddShares(0) = %v", err)
	}
	wantErr(t, "AddShares twice", srv.AddShares(0, good), ErrDuplicate)
	if got := srv.SharesFor(1); len(got) != 1 || got[0].From != 0 {
		t.Fatalf("SharesFor(1) = %v, want client 0's box", got)
	}
	wantErr(t, "AddShares after routing", srv.AddShares(1, f.sealed[1]), ErrPhase)
	y, _ := f.clients[1].MaskedInput(nil, f.xs[1], 1)
	wantErr(t, "AddInput without sharing", srv.AddInput(1, y), ErrMessage)
}

func TestClientRefusesShares(t *testing.T) {
	f := newFixture(t, smallParams, 5, 3)
	c := f.clients[1]
	in := f.in[1]
	mod := func(fn func([]Sealed) []Sealed) []Sealed {
		cp := make([]Sealed, len(in))
		for a, s := range in {
			cp[a] = Sealed{From: s.From, To: s.To, Box: bytes.Clone(s.Box)}
		}
		return fn(cp)
	}
	cases := []struct {
		name string
		s    []Sealed
		want error
	}{
		{"addressed to another", mod(func(s []Sealed) []Sealed { s[0].To = 2; return s }), ErrMessage},
		{"from a non-neighbour", mod(func(s []Sealed) []Sealed { s[0].From = 1; return s }), ErrMessage},
		{"from outside", mod(func(s []Sealed) []Sealed { s[0].From = 40; return s }), ErrMessage},
		{"relabelled sender", mod(func(s []Sealed) []Sealed { s[0].From, s[1].From = s[1].From, s[0].From; return s }), ErrMessage},
		{"tampered box", mod(func(s []Sealed) []Sealed { s[2].Box[5] ^= 1; return s }), ErrMessage},
		{"tampered tag", mod(func(s []Sealed) []Sealed { s[2].Box[SealedSize-1] ^= 1; return s }), ErrMessage},
		{"short box", mod(func(s []Sealed) []Sealed { s[2].Box = s[2].Box[:SealedSize-1]; return s }), ErrMessage},
		{"duplicate", mod(func(s []Sealed) []Sealed { return append(s, s[0]) }), ErrDuplicate},
		{"sealed to another", []Sealed{{From: f.sealed[0][1].From, To: 1, Box: f.sealed[0][1].Box}}, ErrMessage}, // 0's box to 2, relabelled
	}
	if f.sealed[0][1].To == 1 {
		t.Fatalf("fixture: client 0's second box goes to 1")
	}
	for _, tc := range cases {
		_, err := c.MaskedInput(tc.s, f.xs[1], 1)
		wantErr(t, "MaskedInput("+tc.name+")", err, tc.want)
	}
	_, err := c.MaskedInput(in, nil, 1)
	wantErr(t, "MaskedInput(empty x)", err, ErrMessage)
	// The refusals left the client able to send its input.
	if _, err := c.MaskedInput(in, f.xs[1], 1); err != nil {
		t.Fatalf("MaskedInput(good) after refusals = %v", err)
	}
	_, err = c.MaskedInput(in, f.xs[1], 1)
	wantErr(t, "MaskedInput twice", err, ErrPhase)
}

func TestClientRefusesRosters(t *testing.T) {
	f := newFixture(t, smallParams, 5, 4)
	c, err := NewClient(smallParams, f.round, testRand(99))
	if err != nil {
		t.Fatal(err)
	}
	r := slices.Clone(f.roster)
	_, err = c.ShareKeys(r, 0)
	wantErr(t, "ShareKeys(not my keys)", err, ErrRoster)
	r[0] = c.Keys()
	_, err = c.ShareKeys(r[:3], 0)
	wantErr(t, "ShareKeys(3 clients, t = 3)", err, ErrRoster)
	_, err = c.ShareKeys(r, 7)
	wantErr(t, "ShareKeys(self outside)", err, ErrRoster)
	dup := slices.Clone(r)
	dup[2] = dup[3]
	_, err = c.ShareKeys(dup, 0)
	wantErr(t, "ShareKeys(duplicate keys)", err, ErrRoster)
	bad := slices.Clone(r)
	bad[2] = Keys{Seal: make([]byte, 31), Mask: r[2].Mask}
	_, err = c.ShareKeys(bad, 0)
	wantErr(t, "ShareKeys(short key)", err, ErrRoster)
	low := slices.Clone(r)
	low[2] = Keys{Seal: make([]byte, 32), Mask: r[2].Mask} // the zero point: no agreement
	_, err = c.ShareKeys(low, 0)
	wantErr(t, "ShareKeys(low-order key)", err, ErrRoster)
	_, err = c.MaskedInput(nil, f.xs[0], 1)
	wantErr(t, "MaskedInput before ShareKeys", err, ErrPhase)
	_, err = c.Unmask([]int{0, 1, 2}, nil)
	wantErr(t, "Unmask before MaskedInput", err, ErrPhase)
	if _, err := c.ShareKeys(r, 0); err != nil {
		t.Fatalf("ShareKeys(good) after refusals = %v", err)
	}
	_, err = c.ShareKeys(r, 0)
	wantErr(t, "ShareKeys twice", err, ErrPhase)
	if _, err := NewClient(smallParams, nil, testRand(1)); !errors.Is(err, ErrParams) {
		t.Fatalf("NewClient(empty round) = %v, want ErrParams", err)
	}
	if _, err := NewServer(smallParams, f.round, f.roster, 0); !errors.Is(err, ErrParams) {
		t.Fatalf("NewServer(dim 0) = %v, want ErrParams", err)
	}
	if _, err := NewServer(smallParams, f.round, dup, 4); !errors.Is(err, ErrRoster) {
		t.Fatalf("NewServer(duplicate keys) = %v, want ErrRoster", err)
	}
}

func TestBoxBoundToRound(t *testing.T) {
	f := newFixture(t, smallParams, 5, 5)
	c := f.clients[1]
	for _, s := range f.in[1] {
		key := c.openKeys[placeOf(c.nbrs, s.From)]
		if _, err := open(key, f.round, s); err != nil {
			t.Fatalf("open(genuine box from %d) = %v", s.From, err)
		}
		if _, err := open(key, []byte("another round"), s); !errors.Is(err, ErrMessage) {
			t.Fatalf("open(box of another round) = %v, want ErrMessage", err)
		}
	}
}

// TestServerConcurrent: inputs and reveals arriving from many goroutines give the plain sum (run
// with -race).
func TestServerConcurrent(t *testing.T) {
	p := Params{Neighbours: 4, Threshold: 3, Clip: 1, Bits: 16, MaxWeight: 10}
	f := newFixture(t, p, 9, 11)
	ys := make([][]uint64, 9)
	for i, c := range f.clients {
		var err error
		if ys[i], err = c.MaskedInput(f.in[i], f.xs[i], uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 9)
	for i := range 9 {
		go func() { errs <- f.srv.AddInput(i, ys[i]) }()
	}
	for range 9 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	surv, drop, err := f.srv.Unmasking()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range surv {
		go func() {
			r, err := f.clients[i].Unmask(surv, drop)
			if err == nil {
				err = f.srv.AddReveals(i, r)
			}
			errs <- err
		}()
	}
	for range surv {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	sum, err := f.srv.Sum()
	if err != nil {
		t.Fatal(err)
	}
	ws := []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8}
	if want := plainSum(t, p, f.xs, ws, seq(9)); !slices.Equal(sum, want) {
		t.Fatalf("Sum() = %v, want %v", sum, want)
	}
}

func TestClientRefusesUnmask(t *testing.T) {
	f := newFixture(t, smallParams, 5, 6)
	f.inputs(t)
	cases := []struct {
		name     string
		surv, dr []int
		want     error
	}{
		{"client in both sets", []int{0, 1, 2, 3}, []int{3, 4}, ErrUnmask},
		{"self dropped", []int{0, 2, 3}, []int{1}, ErrUnmask},
		{"self not named", []int{0, 2, 3, 4}, nil, ErrUnmask},
		{"below threshold", []int{1, 2}, []int{0, 3, 4}, ErrUnmask},
		{"outside roster", []int{0, 1, 2, 9}, nil, ErrMessage},
		{"named twice", []int{0, 1, 1, 2}, nil, ErrMessage},
	}
	for a, tc := range cases {
		g := newFixture(t, smallParams, 5, uint64(60+a))
		g.inputs(t)
		r, err := g.clients[1].Unmask(tc.surv, tc.dr)
		if r != nil {
			t.Fatalf("Unmask(%s) revealed %d shares", tc.name, len(r))
		}
		wantErr(t, "Unmask("+tc.name+")", err, tc.want)
		// Every client answers at most once: the refused request was its last.
		_, err = g.clients[1].Unmask([]int{0, 1, 2, 3, 4}, nil)
		wantErr(t, "Unmask after a refusal", err, ErrUnmask)
	}
	g := newFixture(t, smallParams, 5, 7)
	g.inputs(t)
	if _, err := g.clients[0].Unmask([]int{0, 1, 2, 3, 4}, nil); err != nil {
		t.Fatalf("Unmask(honest) = %v", err)
	}
	_, err := g.clients[0].Unmask([]int{0, 1, 2, 3, 4}, nil)
	wantErr(t, "Unmask twice", err, ErrUnmask)
}

func TestServerRefusesReveals(t *testing.T) {
	p := Params{Neighbours: 4, Threshold: 3, Clip: 1, Bits: 16, MaxWeight: 10}
	f := newFixture(t, p, 8, 8)
	wantErr(t, "AddReveals before Unmasking", f.srv.AddReveals(0, nil), ErrPhase)
	for i := range 7 { // client 7 drops
		y, _ := f.clients[i].MaskedInput(f.in[i], f.xs[i], 1)
		if err := f.srv.AddInput(i, y); err != nil {
			t.Fatal(err)
		}
	}
	surv, drop, err := f.srv.Unmasking()
	if err != nil {
		t.Fatal(err)
	}
	rev, err := f.clients[0].Unmask(surv, drop)
	if err != nil {
		t.Fatal(err)
	}
	nonNb := -1
	for j := range 8 {
		if j != 0 && placeOf(f.srv.Neighbours(0), j) < 0 {
			nonNb = j
			break
		}
	}
	wantErr(t, "AddReveals(from a non-survivor)", f.srv.AddReveals(7, rev), ErrMessage)
	wantErr(t, "AddReveals(from outside)", f.srv.AddReveals(8, rev), ErrMessage)
	wantErr(t, "AddReveals(of a non-neighbour)", f.srv.AddReveals(0, append(slices.Clone(rev), Reveal{Of: nonNb, Share: make([]byte, 32)})), ErrMessage)
	wantErr(t, "AddReveals(of itself)", f.srv.AddReveals(0, []Reveal{{Of: 0, Share: make([]byte, 32)}}), ErrMessage)
	wantErr(t, "AddReveals(twice of one)", f.srv.AddReveals(0, append(slices.Clone(rev), rev[0])), ErrDuplicate)
	wantErr(t, "AddReveals(short share)", f.srv.AddReveals(0, []Reveal{{Of: rev[0].Of, Share: rev[0].Share[:31]}}), ErrMessage)
	if err := f.srv.AddReveals(0, rev); err != nil {
		t.Fatalf("AddReveals(0) = %v", err)
	}
	wantErr(t, "AddReveals(0) twice", f.srv.AddReveals(0, rev), ErrDuplicate)
	for _, i := range surv[1:] {
		r, err := f.clients[i].Unmask(surv, drop)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.srv.AddReveals(i, r); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := f.srv.Sum()
	if err != nil {
		t.Fatalf("Sum() = %v", err)
	}
	if want := plainSum(t, p, f.xs, []uint64{1, 1, 1, 1, 1, 1, 1, 1}, surv); !slices.Equal(sum, want) {
		t.Fatalf("Sum() = %v, want %v", sum, want)
	}
	wantErr(t, "AddReveals after Sum", f.srv.AddReveals(1, nil), ErrPhase)
}

// TestServerDetectsWrongShares: a survivor revealing a wrong share gives ErrMessage naming the
// client whose secret it was, never a wrong sum.
func TestServerDetectsWrongShares(t *testing.T) {
	for _, dropped := range []bool{false, true} {
		p := Params{Neighbours: 0, Threshold: 3, Clip: 1, Bits: 16, MaxWeight: 10}
		f := newFixture(t, p, 5, 9)
		last := 5
		if dropped {
			last = 4 // client 4 drops: its mask key is reconstructed
		}
		for i := range last {
			y, _ := f.clients[i].MaskedInput(f.in[i], f.xs[i], 1)
			if err := f.srv.AddInput(i, y); err != nil {
				t.Fatal(err)
			}
		}
		surv, drop, _ := f.srv.Unmasking()
		victim := 4
		if !dropped {
			victim = 2
		}
		for n, i := range surv {
			r, err := f.clients[i].Unmask(surv, drop)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 { // survivor 0 lies about the victim's share
				for a := range r {
					if r[a].Of == victim {
						r[a].Share[0] ^= 1
					}
				}
			}
			if err := f.srv.AddReveals(i, r); err != nil {
				t.Fatal(err)
			}
		}
		sum, err := f.srv.Sum()
		if !errors.Is(err, ErrMessage) || !strings.Contains(err.Error(), fmt.Sprintf("client %d's", victim)) {
			t.Fatalf("dropped=%v: Sum() with a wrong share = %v, %v, want ErrMessage naming client %d", dropped, sum, err, victim)
		}
	}
}

// TestMaliciousServerCannotUnmask: a server that names client v as a survivor to some of v's
// neighbours and as dropped to the others collects shares of v's self-mask seed from the first
// and of its mask key from the second; with t > k/2 it never holds t of both, whatever the split,
// and a request naming v in both sets is refused by every honest client.
func TestMaliciousServerCannotUnmask(t *testing.T) {
	p := Params{Neighbours: 0, Threshold: 3, Clip: 1, Bits: 16, MaxWeight: 10} // n = 5, k = 4
	const v = 0
	for split := range 1 << 4 {
		f := newFixture(t, p, 5, uint64(20+split))
		f.inputs(t)
		var bShares, mShares []shamir.Share
		nb := f.srv.Neighbours(v)
		for a, j := range nb {
			others := []int{}
			for _, o := range nb {
				if o != j {
					others = append(others, o)
				}
			}
			var surv, dr []int
			if split&(1<<a) != 0 {
				surv, dr = append([]int{j, v}, others...), nil
			} else {
				surv, dr = append([]int{j}, others...), []int{v}
			}
			slices.Sort(surv)
			r, err := f.clients[j].Unmask(surv, dr)
			if err != nil {
				t.Fatalf("client %d: Unmask = %v", j, err)
			}
			x := byte(placeOf(f.srv.Neighbours(v), j) + 1)
			for _, rv := range r {
				if rv.Of != v {
					continue
				}
				if split&(1<<a) != 0 {
					bShares = append(bShares, shamir.Share{X: x, Y: rv.Share})
				} else {
					mShares = append(mShares, shamir.Share{X: x, Y: rv.Share})
				}
			}
			// Asking the same honest client again, the other way, is refused.
			if _, err := f.clients[j].Unmask(surv, []int{v}); !errors.Is(err, ErrUnmask) {
				t.Fatalf("client %d answered a second unmask request: %v", j, err)
			}
		}
		if len(bShares)+len(mShares) != len(nb) {
			t.Fatalf("split %04b: got %d+%d shares of client %d, want one per neighbour", split, len(bShares), len(mShares), v)
		}
		if len(bShares) >= p.Threshold && len(mShares) >= p.Threshold {
			t.Fatalf("split %04b: the server holds %d self-mask and %d mask-key shares of client %d", split, len(bShares), len(mShares), v)
		}
		// The mask key needs t shares: fewer give a key other than the advertised one.
		if len(mShares) > 0 && len(mShares) < p.Threshold {
			sk, _ := shamir.Combine(mShares)
			if priv, err := ecdhPriv(sk); err == nil && bytes.Equal(priv, f.roster[v].Mask) {
				t.Fatalf("split %04b: %d < t shares gave client %d's mask key", split, len(mShares), v)
			}
		}
	}
	// Naming v in both sets: every honest client refuses.
	f := newFixture(t, p, 5, 40)
	f.inputs(t)
	for _, j := range f.srv.Neighbours(v) {
		if r, err := f.clients[j].Unmask([]int{0, 1, 2, 3, 4}, []int{v}); !errors.Is(err, ErrUnmask) || r != nil {
			t.Fatalf("client %d: Unmask(v in both) = %v, %v, want ErrUnmask and nothing", j, r, err)
		}
	}
}
