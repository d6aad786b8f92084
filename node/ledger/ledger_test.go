package ledger_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aviate-labs/agent-go/identity"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// dfxSecp256k1PEM writes a secp256k1 key as `dfx identity new` does: EC PARAMETERS, then a SEC1
// EC PRIVATE KEY.
func dfxSecp256k1PEM(t *testing.T) []byte {
	k, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	oid := asn1.ObjectIdentifier{1, 3, 132, 0, 10}
	pub := k.PubKey().SerializeUncompressed()
	der, err := asn1.Marshal(struct {
		Version    int
		PrivateKey []byte
		Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
		PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
	}{1, k.Serialize(), oid, asn1.BitString{Bytes: pub, BitLength: 8 * len(pub)}})
	if err != nil {
		t.Fatal(err)
	}
	params, _ := asn1.Marshal(oid)
	return append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: params}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
}

func TestICPIdentityFromNodeKeyOrPEM(t *testing.T) {
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	cfg := config.Default().ICP
	id, err := ledger.Identity(cfg, priv)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := priv.Raw()
	want, _ := identity.NewEd25519Identity(raw[32:], raw)
	if !id.Sender().Equal(want.Sender()) {
		t.Errorf("Identity() without identity_pem is not the node key")
	}
	path := filepath.Join(t.TempDir(), "identity.pem")
	cfg.IdentityPEM = path

	_, dfx, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(dfx)
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	wantEd, _ := identity.NewEd25519Identity(dfx.Public().(ed25519.PublicKey), dfx)
	if id, err = ledger.Identity(cfg, priv); err != nil || !id.Sender().Equal(wantEd.Sender()) {
		t.Errorf("Identity() with a dfx Ed25519 PEM = %v; want the PEM's key", err)
	}
	os.WriteFile(path, dfxSecp256k1PEM(t), 0o600)
	if id, err = ledger.Identity(cfg, priv); err != nil || icp.KeyKind(id) != "secp256k1" {
		t.Errorf("Identity() with a dfx secp256k1 PEM = %v, %v", id, err)
	} else if p := ledger.New(cfg, id).Principal(); p.Encode() != id.Sender().Encode() {
		t.Errorf("Principal() = %s, want the PEM's %s", p, id.Sender())
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(p256)
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), 0o600)
	if id, err = ledger.Identity(cfg, priv); err != nil || icp.KeyKind(id) != "prime256v1" {
		t.Errorf("Identity() with a prime256v1 PEM = %v, %v", id, err)
	}

	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	sec1, _ = x509.MarshalECPrivateKey(p384)
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), 0o600)
	if _, err := ledger.Identity(cfg, priv); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "curve") {
		t.Errorf("Identity() with a P-384 PEM = %v; want a refusal naming the file and the curve", err)
	}
	os.WriteFile(path, []byte("not a pem"), 0o600)
	if _, err := ledger.Identity(cfg, priv); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Identity() with a broken PEM = %v", err)
	}
}
