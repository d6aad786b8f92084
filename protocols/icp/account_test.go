package icp

import (
	"errors"
	"testing"

	"github.com/aviate-labs/agent-go/principal"
)

// TestAccountIDKnownValues checks account identifiers against values DFINITY publishes: the
// @dfinity/ledger-icp tests (dfinity/ic-js packages/ledger-icp/src/account_identifier.spec.ts),
// the Motoko reference ledger's tests (dfinity/ledger-ref src/AccountTests.mo) and agent-go's
// example for the empty principal.
func TestAccountIDKnownValues(t *testing.T) {
	sub := func(n byte) []byte { b := make([]byte, 32); b[31] = n; return b }
	cases := []struct {
		owner string
		sub   []byte
		want  string
	}{
		{"bwz3t-ercuj-owo6s-4adfr-sbu4o-l72hg-kfhc5-5sapm-tj6bn-3scho-uqe", nil, "df4ad42194201b15ecbbe66ff68559a126854d8141fd935c5bd53433c2fb28d4"},
		{"bwz3t-ercuj-owo6s-4adfr-sbu4o-l72hg-kfhc5-5sapm-tj6bn-3scho-uqe", sub(0), "df4ad42194201b15ecbbe66ff68559a126854d8141fd935c5bd53433c2fb28d4"},
		{"bwz3t-ercuj-owo6s-4adfr-sbu4o-l72hg-kfhc5-5sapm-tj6bn-3scho-uqe", sub(1), "16c3ca805340f0e426023bea907488100f93d5e2a654644d5d6881c7a7b2071e"},
		{"bwz3t-ercuj-owo6s-4adfr-sbu4o-l72hg-kfhc5-5sapm-tj6bn-3scho-uqe", sub(255), "f9d8833b97d142d888d00606e2cadec4e70b9798d71c35091a20daaa14082e67"},
		{"iooej-vlrze-c5tme-tn7qt-vqe7z-7bsj5-ebxlc-hlzgs-lueo3-3yast-pae", nil, "bdc4ee05d42cd0669786899f256c8fd7217fa71177bd1fa7b9534f568680a938"},
		{"aaaaa-aa", nil, "2d0e897f7e862d2b57d9bc9ea5c65f9a24ac6c074575f47898314b8d6cb0929d"},
	}
	for _, c := range cases {
		p := principal.MustDecode(c.owner)
		got := AccountIDOf(p, c.sub)
		if got.String() != c.want {
			t.Errorf("AccountIDOf(%s, %x) = %s, want %s", c.owner, c.sub, got, c.want)
		}
		var subp *[]byte
		if c.sub != nil {
			subp = &c.sub
		}
		if id := (Account{Owner: p, Subaccount: subp}).ID(); id != got {
			t.Errorf("Account.ID = %s, want %s", id, got)
		}
		parsed, err := ParseAccountID(c.want)
		if err != nil || parsed != got {
			t.Errorf("ParseAccountID(%s) = %s, %v", c.want, parsed, err)
		}
		if up, err := AccountIDFromBytes(got.Hash()); err != nil || up != got {
			t.Errorf("AccountIDFromBytes(28-byte hash) = %s, %v", up, err)
		}
	}
	// DFINITY's hex example parses (d3e13d47… from the same spec file).
	if _, err := ParseAccountID("D3E13D4777E22367532053190B6C6CCF57444A61337E996242B1ABFB52CF92C8"); err != nil {
		t.Errorf("upper-case hex: %v", err)
	}
}

func TestParseAccountIDRefusesBadInput(t *testing.T) {
	for _, s := range []string{
		"",
		"df4ad42194201b15ecbbe66ff68559a126854d8141fd935c5bd53433c2fb28",   // short
		"df4ad42194201b15ecbbe66ff68559a126854d8141fd935c5bd53433c2fb28d5", // checksum off by one bit
		"ef4ad42194201b15ecbbe66ff68559a126854d8141fd935c5bd53433c2fb28d4", // checksum byte altered
		"zz4ad42194201b15ecbbe66ff68559a126854d8141fd935c5bd53433c2fb28d4",
	} {
		if _, err := ParseAccountID(s); !errors.Is(err, ErrAccountID) {
			t.Errorf("ParseAccountID(%q) = %v, want ErrAccountID", s, err)
		}
	}
	if _, err := AccountIDFromBytes(make([]byte, 31)); !errors.Is(err, ErrAccountID) {
		t.Errorf("AccountIDFromBytes(31 bytes) = %v", err)
	}
}
