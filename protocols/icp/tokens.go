package icp

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
)

// Token is what a person needs to read amounts: the ledger's symbol, decimals and fee.
type Token struct {
	Symbol   string
	Decimals uint8
	Fee      *big.Int
}

// tokenCache remembers a ledger's Token (symbol and decimals do not change; the fee rarely does).
type tokenCache struct {
	mu  sync.Mutex
	tok *Token
}

// Token reads the ledger's symbol, decimals and fee once.
func (c *Client) Token(ctx context.Context) (Token, error) {
	c.tok.mu.Lock()
	defer c.tok.mu.Unlock()
	if c.tok.tok != nil {
		return *c.tok.tok, nil
	}
	dec, err := c.Decimals(ctx)
	if err != nil {
		return Token{}, err
	}
	sym, err := c.Symbol(ctx)
	if err != nil {
		return Token{}, err
	}
	fee, err := c.Fee(ctx)
	if err != nil {
		return Token{}, err
	}
	c.tok.tok = &Token{Symbol: sym, Decimals: dec, Fee: fee}
	return *c.tok.tok, nil
}

// CachedToken returns the token details if an earlier Token call read them, without asking.
func (c *Client) CachedToken() (Token, bool) {
	c.tok.mu.Lock()
	defer c.tok.mu.Unlock()
	if c.tok.tok == nil {
		return Token{}, false
	}
	return *c.tok.tok, true
}

// Format writes base units as tokens with the symbol: "1.5 ICP".
func (t Token) Format(base *big.Int) string {
	s := FormatTokens(base, t.Decimals)
	if t.Symbol == "" {
		return s
	}
	return s + " " + t.Symbol
}

// FormatTokens writes base units as a decimal number of tokens without trailing zeros
// (150000000 with 8 decimals is "1.5", 0 is "0").
func FormatTokens(base *big.Int, decimals uint8) string {
	if base == nil {
		return "0"
	}
	neg := base.Sign() < 0
	digits := new(big.Int).Abs(base).String()
	d := int(decimals)
	if len(digits) <= d {
		digits = strings.Repeat("0", d-len(digits)+1) + digits
	}
	whole, frac := digits[:len(digits)-d], strings.TrimRight(digits[len(digits)-d:], "0")
	out := whole
	if frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}

// ErrAmount is returned for a token amount that cannot be read.
var ErrAmount = errors.New("not a token amount")

// ParseTokens reads a decimal token amount ("1.5", "0.0001", "2") as base units, refusing more
// fractional digits than the ledger has.
func ParseTokens(s string, decimals uint8) (*big.Int, error) {
	s = strings.TrimSpace(s)
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || strings.ContainsAny(whole+frac, "+- ") {
		return nil, fmt.Errorf("%w: %q", ErrAmount, s)
	}
	if len(frac) > int(decimals) {
		return nil, fmt.Errorf("%w: %q has more than %d decimal places", ErrAmount, s, decimals)
	}
	n, ok := new(big.Int).SetString("0"+whole+frac+strings.Repeat("0", int(decimals)-len(frac)), 10)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrAmount, s)
	}
	return n, nil
}

// Shortfall is an insufficient-funds refusal with what the transfer needed: errors.Is matches
// ErrInsufficientFunds and errors.As finds the *TransferFailure.
type Shortfall struct {
	Failure *TransferFailure
	Balance *big.Int // what the account holds
	Amount  *big.Int // what was to be sent
	Fee     *big.Int // the ledger's fee on top
	Token   Token
}

// Error states the balance and the amount + fee needed, as tokens and base units.
func (s *Shortfall) Error() string {
	need := new(big.Int).Add(s.Amount, s.Fee)
	return fmt.Sprintf("insufficient funds: the balance is %s (%s base units) but the transfer needs %s + %s fee = %s (%s base units)",
		s.Token.Format(s.Balance), s.Balance, s.Token.Format(s.Amount), s.Token.Format(s.Fee), s.Token.Format(need), need)
}

// Unwrap returns the ledger's TransferFailure.
func (s *Shortfall) Unwrap() error { return s.Failure }

// shortfall turns an InsufficientFunds failure into a Shortfall naming amount and fee; when the
// ledger cannot be asked for its token details the failure is returned as it was.
func (c *Client) shortfall(ctx context.Context, f *TransferFailure, amount *big.Int) error {
	tok, err := c.Token(ctx)
	if err != nil || f.Balance == nil {
		return f
	}
	return &Shortfall{Failure: f, Balance: f.Balance, Amount: amount, Fee: tok.Fee, Token: tok}
}
