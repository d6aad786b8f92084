package icp

import (
	"encoding/pem"
	"testing"
)

// FuzzParseIdentityPEM feeds arbitrary files to the dfx PEM reader: an error or a usable
// identity, never a panic.
func FuzzParseIdentityPEM(f *testing.F) {
	k1, _ := secp256k1PEM(f, true)
	f.Add(k1)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{0x30, 0x00}}))
	f.Add([]byte("-----BEGIN EC PARAMETERS-----\nBgUrgQQACg==\n-----END EC PARAMETERS-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := ParseIdentityPEM(data)
		if err != nil {
			return
		}
		if _, err := id.Sign([]byte("m")); err != nil {
			t.Fatalf("a parsed identity cannot sign: %v", err)
		}
	})
}

// FuzzParseAccountID: a parsed account identifier prints back to the same hex (lower case).
func FuzzParseAccountID(f *testing.F) {
	f.Add("df4ad42194201b15ecbbe66ff68559a126854d8141fd935c5bd53433c2fb28d4")
	f.Add("DF4AD42194201B15ECBBE66FF68559A126854D8141FD935C5BD53433C2FB28D4")
	f.Add("00")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseAccountID(s)
		if err != nil {
			return
		}
		back, err := ParseAccountID(id.String())
		if err != nil || back != id {
			t.Fatalf("%q parsed to %s, which does not parse back (%v)", s, id, err)
		}
	})
}
