package icp

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/aviate-labs/agent-go/identity"
)

// The PEM identities dfx writes: `dfx identity new` makes secp256k1 keys (SEC1 "EC PRIVATE KEY",
// usually after an "EC PARAMETERS" block), older dfx and `--storage-mode plaintext` imports
// Ed25519 keys (PKCS#8 "PRIVATE KEY"), and HSM/imported keys may be prime256v1.

var (
	oidSecp256k1 = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
	oidP256      = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidEC        = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
)

// sec1Key is RFC 5915's ECPrivateKey.
type sec1Key struct {
	Version    int
	PrivateKey []byte
	Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

// pkcs8Key is RFC 5208's PrivateKeyInfo.
type pkcs8Key struct {
	Version    int
	Algorithm  pkix.AlgorithmIdentifier
	PrivateKey []byte
}

// KeyKind names an identity's key type as dfx does: "secp256k1", "ed25519" or "prime256v1".
func KeyKind(id identity.Identity) string {
	switch id.(type) {
	case *identity.Secp256k1Identity:
		return "secp256k1"
	case *identity.Ed25519Identity:
		return "ed25519"
	case *identity.Prime256v1Identity:
		return "prime256v1"
	}
	return "unknown"
}

// ParseIdentityPEM reads a dfx identity PEM: secp256k1 (SEC1, with or without an EC PARAMETERS
// block, or PKCS#8), Ed25519 (PKCS#8) or prime256v1 (SEC1 or PKCS#8). Other keys are refused
// with the reason.
func ParseIdentityPEM(data []byte) (identity.Identity, error) {
	var curveParam asn1.ObjectIdentifier
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("it holds no private key PEM block")
		}
		switch block.Type {
		case "EC PARAMETERS":
			asn1.Unmarshal(block.Bytes, &curveParam) // the key's own curve field decides below
		case "EC PRIVATE KEY":
			var k sec1Key
			if _, err := asn1.Unmarshal(block.Bytes, &k); err != nil {
				return nil, fmt.Errorf("its EC private key is not SEC1 DER: %v", err)
			}
			curve := k.Curve
			if len(curve) == 0 {
				curve = curveParam
			}
			return ecIdentity(curve, block.Bytes)
		case "PRIVATE KEY":
			return pkcs8Identity(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("it is encrypted: export it unencrypted with `dfx identity export`")
		}
	}
}

func ecIdentity(curve asn1.ObjectIdentifier, sec1 []byte) (identity.Identity, error) {
	switch {
	case curve.Equal(oidSecp256k1):
		id, err := identity.NewSecp256k1IdentityFromPEMWithoutParameters(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
		if err != nil {
			return nil, fmt.Errorf("its secp256k1 key does not parse: %v", err)
		}
		return id, nil
	case curve.Equal(oidP256):
		k, err := x509.ParseECPrivateKey(sec1)
		if err != nil {
			return nil, fmt.Errorf("its prime256v1 key does not parse: %v", err)
		}
		return identity.NewPrime256v1Identity(k), nil
	case len(curve) == 0:
		return nil, errors.New("its EC key names no curve")
	}
	return nil, fmt.Errorf("its key is on curve %s, which the Internet Computer does not accept (use secp256k1, Ed25519 or prime256v1)", curve)
}

func pkcs8Identity(der []byte) (identity.Identity, error) {
	var k pkcs8Key
	if _, err := asn1.Unmarshal(der, &k); err != nil {
		return nil, fmt.Errorf("its private key is not PKCS#8 DER: %v", err)
	}
	if k.Algorithm.Algorithm.Equal(oidEC) {
		var curve asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(k.Algorithm.Parameters.FullBytes, &curve); err != nil {
			return nil, errors.New("its EC key names no curve")
		}
		if curve.Equal(oidSecp256k1) {
			return ecIdentity(curve, k.PrivateKey)
		}
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("its private key is of a kind the Internet Computer does not accept (use secp256k1, Ed25519 or prime256v1): %v", err)
	}
	switch key := key.(type) {
	case ed25519.PrivateKey:
		return identity.NewEd25519Identity(key.Public().(ed25519.PublicKey), key)
	case *ecdsa.PrivateKey:
		if key.Curve == elliptic.P256() {
			return identity.NewPrime256v1Identity(key), nil
		}
		return nil, fmt.Errorf("its key is on curve %s, which the Internet Computer does not accept (use secp256k1, Ed25519 or prime256v1)", key.Curve.Params().Name)
	}
	return nil, fmt.Errorf("its key is a %T, which the Internet Computer does not accept (use secp256k1, Ed25519 or prime256v1)", key)
}
