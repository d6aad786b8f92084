package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/califusion/califusion/config"
	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestICPKeyFromNodeKeyOrPEM(t *testing.T) {
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	n := &Node{cfg: config.Default(), key: priv}
	k, err := n.icpKey()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := priv.Raw()
	if string(k) != string(raw) {
		t.Errorf("icpKey() without identity_pem is not the node key")
	}

	_, dfx, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(dfx)
	path := filepath.Join(t.TempDir(), "identity.pem")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	n.cfg.ICP.IdentityPEM = path
	if k, err = n.icpKey(); err != nil || string(k) != string(dfx) {
		t.Errorf("icpKey() with a dfx PEM = %v; want the PEM's key", err)
	}
	os.WriteFile(path, []byte("not a pem"), 0o600)
	if _, err := n.icpKey(); err == nil {
		t.Errorf("icpKey() with a broken PEM = nil error")
	}
}
