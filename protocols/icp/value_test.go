package icp

import (
	"encoding/hex"
	"math/big"
	"strings"
	"testing"

	"github.com/aviate-labs/agent-go/candid/idl"
)

// The test vectors of ICRC-3 HASHINGVALUES.md (prefixes for the composite ones as recorded in
// shared/specs/ICP.md §3).
func TestValueHashVectors(t *testing.T) {
	i := idl.NewBigInt(big.NewInt(-42))
	from, _ := hex.DecodeString("00abcdef0012340056789a00bcdef000012345678900abcdef01")
	to, _ := hex.DecodeString("00ab0def0012340056789a00bcdef000012345678900abcdef01")
	tests := []struct {
		name string
		v    Value
		want string
	}{
		{"Nat 42", NatValue(42), "684888c0ebb17f374298b65ee2807526c066094c701bcc7ebbe1c1095f494fc1"},
		{"Int -42", Value{Int: &i}, "de5a6f78116eca62d7fc5ce159d23ae6b889b365a1739ad2cf36f925a140d0cc"},
		{"Text", TextValue("Hello, World!"), "dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f"},
		{"Blob", BlobValue([]byte{1, 2, 3, 4}), "9f64a747e1b97f131fabb6b447296c9b6f0201e79fb3c5356e6c77e89b6a806a"},
		{"Array", ArrayValue(NatValue(3), TextValue("foo"), BlobValue([]byte{5, 6})), "514a0401"},
		{"Map", MapValue(
			MapEntry{"from", BlobValue(from)},
			MapEntry{"to", BlobValue(to)},
			MapEntry{"amount", NatValue(42)},
			MapEntry{"created_at", NatValue(1699218263)},
			MapEntry{"memo", NatValue(0)},
		), "c56ece65"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := tt.v.Hash()
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(h[:]); !strings.HasPrefix(got, tt.want) {
				t.Errorf("Hash(%s) = %s, want %s", tt.name, got, tt.want)
			}
		})
	}
	if _, err := (&Value{}).Hash(); err == nil {
		t.Errorf("Hash(empty value) = nil error, want ErrValue")
	}
}

func TestLEB(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		u, s string
	}{{0, "00", "00"}, {127, "7f", "ff00"}, {128, "8001", "8001"}, {624485, "e58e26", "e58e26"}, {-1, "", "7f"}, {-123456, "", "c0bb78"}} {
		if tt.n >= 0 {
			if got := hex.EncodeToString(uleb(big.NewInt(tt.n))); got != tt.u {
				t.Errorf("uleb(%d) = %s, want %s", tt.n, got, tt.u)
			}
		}
		if got := hex.EncodeToString(sleb(big.NewInt(tt.n))); got != tt.s {
			t.Errorf("sleb(%d) = %s, want %s", tt.n, got, tt.s)
		}
	}
}
