package icp

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// Secp256k1PEM returns a dfx-style secp256k1 identity PEM (EC PARAMETERS + SEC1 EC PRIVATE KEY)
// and the DER public key the Internet Computer derives the principal from.
func secp256k1PEM(t testing.TB, withParams bool) ([]byte, []byte) {
	k, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := k.PubKey().SerializeUncompressed()
	der, err := asn1.Marshal(sec1Key{Version: 1, PrivateKey: k.Serialize(), Curve: oidSecp256k1, PublicKey: asn1.BitString{Bytes: pub, BitLength: 8 * len(pub)}})
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	if withParams {
		params, _ := asn1.Marshal(oidSecp256k1)
		out = pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: params})
	}
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
	spki, _ := asn1.Marshal(struct {
		Algo []asn1.ObjectIdentifier
		Key  asn1.BitString
	}{[]asn1.ObjectIdentifier{oidEC, oidSecp256k1}, asn1.BitString{Bytes: pub, BitLength: 8 * len(pub)}})
	return out, spki
}

func TestParseIdentityPEM(t *testing.T) {
	msg := []byte("\x0Aic-request0123456789abcdef0123456789ab")
	check := func(name string, data, spki []byte, kind string) {
		t.Helper()
		id, err := ParseIdentityPEM(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if KeyKind(id) != kind {
			t.Errorf("%s: kind %s, want %s", name, KeyKind(id), kind)
		}
		if want := principal.NewSelfAuthenticating(spki); !id.Sender().Equal(want) {
			t.Errorf("%s: principal %s, want %s (self-authenticating of the public key)", name, id.Sender(), want)
		}
		sig, err := id.Sign(msg)
		if err != nil || !id.Verify(msg, sig) {
			t.Errorf("%s: signature does not verify: %v", name, err)
		}
	}
	for _, params := range []bool{true, false} {
		data, spki := secp256k1PEM(t, params)
		check("secp256k1", data, spki, "secp256k1")
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	spki, _ := x509.MarshalPKIXPublicKey(pub)
	check("ed25519", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), spki, "ed25519")

	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(p256)
	spki, _ = x509.MarshalPKIXPublicKey(&p256.PublicKey)
	check("prime256v1 SEC1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), spki, "prime256v1")
	der, _ = x509.MarshalPKCS8PrivateKey(p256)
	check("prime256v1 PKCS#8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), spki, "prime256v1")

	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	sec1, _ = x509.MarshalECPrivateKey(p384)
	der, _ = x509.MarshalPKCS8PrivateKey(p384)
	for _, bad := range []struct {
		name string
		data []byte
		says string
	}{
		{"P-384 SEC1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), "curve"},
		{"P-384 PKCS#8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), "curve"},
		{"no PEM", []byte("hello"), "no private key"},
		{"garbage key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1, 2, 3}}), "SEC1"},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), "encrypted"},
	} {
		if _, err := ParseIdentityPEM(bad.data); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("ParseIdentityPEM(%s) = %v, want an error saying %q", bad.name, err, bad.says)
		}
	}
}
