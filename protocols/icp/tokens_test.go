package icp

import (
	"errors"
	"math/big"
	"strings"
	"testing"
)

func TestTokens(t *testing.T) {
	for _, c := range []struct {
		base int64
		dec  uint8
		want string
	}{{150_000_000, 8, "1.5"}, {0, 8, "0"}, {1, 8, "0.00000001"}, {10_000, 8, "0.0001"}, {200_000_000, 8, "2"}, {5, 0, "5"}, {-150, 2, "-1.5"}} {
		if got := FormatTokens(big.NewInt(c.base), c.dec); got != c.want {
			t.Errorf("FormatTokens(%d, %d) = %q, want %q", c.base, c.dec, got, c.want)
		}
		if c.base >= 0 {
			if back, err := ParseTokens(c.want, c.dec); err != nil || back.Int64() != c.base {
				t.Errorf("ParseTokens(%q, %d) = %v, %v; want %d", c.want, c.dec, back, err, c.base)
			}
		}
	}
	for _, s := range []string{"", ".", "1.000000001", "-1", "1,5", "abc", "1.5e3"} {
		if _, err := ParseTokens(s, 8); !errors.Is(err, ErrAmount) {
			t.Errorf("ParseTokens(%q) = %v, want ErrAmount", s, err)
		}
	}
	if n, err := ParseTokens(".5", 8); err != nil || n.Int64() != 50_000_000 {
		t.Errorf("ParseTokens(.5) = %v, %v", n, err)
	}
	tok := Token{Symbol: "ICP", Decimals: 8, Fee: big.NewInt(10_000)}
	s := &Shortfall{Failure: &TransferFailure{Kind: ErrInsufficientFunds}, Balance: big.NewInt(50_000_000), Amount: big.NewInt(100_000_000), Fee: tok.Fee, Token: tok}
	var f *TransferFailure
	if !errors.Is(s, ErrInsufficientFunds) || !errors.As(s, &f) || !strings.Contains(s.Error(), "0.5 ICP") || !strings.Contains(s.Error(), "1.0001 ICP") {
		t.Errorf("Shortfall = %q", s)
	}
}
