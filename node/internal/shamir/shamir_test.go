package shamir

import (
	"bytes"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"testing"
)

func TestFieldInverse(t *testing.T) {
	for a := 1; a < 256; a++ {
		if got := mul(byte(a), inv(byte(a))); got != 1 {
			t.Fatalf("%d · inv(%d) = %d", a, a, got)
		}
	}
	// mul agrees with the textbook example of FIPS-197 §4.2: {57}·{83} = {c1}.
	if got := mul(0x57, 0x83); got != 0xc1 {
		t.Fatalf("57·83 = %x, want c1", got)
	}
}

// Every t-subset of the shares reconstructs the secret, for every (t, n) up to 7.
func TestEveryTSubsetReconstructs(t *testing.T) {
	secret := []byte("a 32-byte content key for tests!")
	for n := 1; n <= 7; n++ {
		for th := 1; th <= n; th++ {
			shares, err := Split(secret, n, th, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			for mask := 0; mask < 1<<n; mask++ {
				var sub []Share
				for i := range n {
					if mask&(1<<i) != 0 {
						sub = append(sub, shares[i])
					}
				}
				if len(sub) < th {
					continue
				}
				got, err := Combine(sub)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, secret) {
					t.Fatalf("t=%d n=%d subset %b: got %x", th, n, mask, got)
				}
			}
		}
	}
}

// Random secrets, thresholds and subsets (a property test over many draws).
func TestRandomSplits(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	for range 300 {
		n := 1 + r.IntN(40)
		th := 1 + r.IntN(n)
		secret := make([]byte, 1+r.IntN(64))
		rand.Read(secret)
		shares, err := Split(secret, n, th, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		r.Shuffle(len(shares), func(i, j int) { shares[i], shares[j] = shares[j], shares[i] })
		got, err := Combine(shares[:th+r.IntN(n-th+1)])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, secret) {
			t.Fatalf("n=%d t=%d: wrong secret", n, th)
		}
	}
}

// t−1 shares say nothing: for a one-byte secret and t = 2, 3, the distribution of any t−1
// shares over all random coefficients is the same whatever the secret (checked exhaustively).
func TestFewerThanTRevealNothing(t *testing.T) {
	for _, th := range []int{2, 3} {
		var ref map[string]int
		secrets := []int{0, 1, 0x53, 0xca, 0xff} // t=3 is 65536 splits a secret
		if th == 2 {
			secrets = secrets[:0]
			for s := range 256 {
				secrets = append(secrets, s)
			}
		}
		for _, secret := range secrets {
			counts := map[string]int{}
			coeffs := make([]byte, th-1)
			total := 1 << (8 * (th - 1))
			for c := range total {
				for k := range coeffs {
					coeffs[k] = byte(c >> (8 * k))
				}
				shares, err := Split([]byte{byte(secret)}, 4, th, bytes.NewReader(coeffs))
				if err != nil {
					t.Fatal(err)
				}
				var view []byte
				for _, s := range shares[1:th] { // shares at x = 2..t: t−1 of them
					view = append(view, s.Y[0])
				}
				counts[string(view)]++
			}
			if ref == nil {
				ref = counts
				continue
			}
			if len(counts) != len(ref) {
				t.Fatalf("t=%d: secret %d gives %d views, secret 0 %d", th, secret, len(counts), len(ref))
			}
			for v, n := range ref {
				if counts[v] != n {
					t.Fatalf("t=%d: view %x appears %d times for secret %d, %d for secret 0", th, v, counts[v], secret, n)
				}
			}
		}
	}
}

// Fewer than t shares give a value that is not the secret (most of the time: here always, for
// a 32-byte secret).
func TestFewerThanTFail(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	shares, _ := Split(secret, 5, 3, rand.Reader)
	got, err := Combine(shares[:2])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, secret) {
		t.Fatal("two shares of a 3-of-5 split gave the secret")
	}
}

func TestBadInput(t *testing.T) {
	for _, c := range []struct{ n, t int }{{0, 0}, {3, 0}, {2, 3}, {256, 2}} {
		if _, err := Split([]byte{1}, c.n, c.t, rand.Reader); !errors.Is(err, ErrParams) {
			t.Errorf("Split n=%d t=%d: %v", c.n, c.t, err)
		}
	}
	if _, err := Split(nil, 3, 2, rand.Reader); !errors.Is(err, ErrParams) {
		t.Errorf("empty secret: %v", err)
	}
	if _, err := Split([]byte{1}, 3, 2, bytes.NewReader(nil)); err == nil {
		t.Error("a failing random source was not reported")
	}
	shares, _ := Split([]byte("secret"), 3, 2, rand.Reader)
	for name, bad := range map[string][]Share{
		"none":      nil,
		"x=0":       {{X: 0, Y: shares[0].Y}, shares[1]},
		"duplicate": {shares[0], shares[0]},
		"lengths":   {shares[0], {X: 2, Y: []byte{1}}},
		"empty":     {{X: 1}},
	} {
		if _, err := Combine(bad); !errors.Is(err, ErrShares) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzCombine(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4}, byte(2))
	f.Fuzz(func(t *testing.T, data []byte, k byte) {
		// Any bytes cut into shares either decode to an error or to a value: never a panic.
		n := int(k%8) + 1
		if len(data) < n {
			return
		}
		size := len(data) / n
		var shares []Share
		for i := range n {
			shares = append(shares, Share{X: data[i*size], Y: data[i*size : (i+1)*size]})
		}
		Combine(shares)
	})
}

func BenchmarkSplitCombine32(b *testing.B) {
	secret := make([]byte, 32)
	for b.Loop() {
		shares, _ := Split(secret, 10, 6, rand.Reader)
		Combine(shares[:6])
	}
}
