package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// writeDfxSecp256k1PEM writes a secp256k1 identity as `dfx identity new` does (EC PARAMETERS,
// then a SEC1 EC PRIVATE KEY), generated here with decred's secp256k1, and returns its path.
func writeDfxSecp256k1PEM(t *testing.T) string {
	t.Helper()
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
	path := filepath.Join(t.TempDir(), "identity.pem")
	data := append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: params}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSecp256k1TrainerBuys: a trainer whose payments come from a dfx secp256k1 identity shows
// that identity's account in node info and ledger balance, pays for a model on the emulated ICP
// ledger, is unlocked by the coordinator and exports the exact bytes. A PEM on a curve the
// Internet Computer does not accept stops the daemon at start with the file named.
func TestSecp256k1TrainerBuys(t *testing.T) {
	replica := startICPLedger(t, icptest.Options{})
	c := newCluster(t)
	coord := c.NewNodes("pc", 1, "publisher", "coordinator")[0]
	tr := c.NewNodes("k1", 1, "trainer")[0]
	useReplica(t, replica.URL(), coord, tr)
	pemPath := writeDfxSecp256k1PEM(t)
	if err := tr.EditConfig(func(cfg *config.Config) { cfg.ICP.IdentityPEM = pemPath }); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(pemPath)
	id, err := icp.ParseIdentityPEM(raw)
	if err != nil {
		t.Fatal(err)
	}
	c.start(coord)
	c.start(tr, "--bootstrap", coord.P2PAddr())

	info, err := tr.Client().NodeInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wantID := icp.Account{Owner: id.Sender()}.ID().String()
	if info.ICPPrincipal != id.Sender().Encode() || info.ICPAccount != info.ICPPrincipal || info.ICPAccountID != wantID || info.ICPKeyKind != "secp256k1" {
		t.Fatalf("node info = %+v; want the PEM's principal %s, account id %s, key kind secp256k1", info, id.Sender(), wantID)
	}
	replica.Mint(principal.MustDecode(info.ICPPrincipal), 10_000_000)
	bal, err := tr.Client().LedgerBalance(t.Context())
	if err != nil || bal.Account != info.ICPPrincipal || bal.AccountID != info.ICPAccountID || bal.Balance != "10000000" {
		t.Fatalf("ledger balance = %+v, %v; want node info's account holding the minted 10000000", bal, err)
	}

	waitHeard(t, coord, tr)
	path, sum := writeRandom(t, 1<<20)
	res, err := coord.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "k1", Price: "1000"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error { _, err := tr.Client().ModelGet(t.Context(), res.ModelID); return err })
	job, err := tr.Client().ModelFetch(t.Context(), res.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, tr, job.JobID, 30*time.Second)
	if _, err := tr.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: res.ModelID}); err != nil {
		t.Fatalf("model_unlock (pays from the secp256k1 identity) = %v", err)
	}
	exp, err := tr.Client().ModelExport(t.Context(), res.ModelID, filepath.Join(t.TempDir(), "k1.bin"))
	if err != nil || exp.SHA256 != sum {
		t.Fatalf("export = %+v, %v; want sha256 %s", exp, err, sum)
	}
	if bal, err := tr.Client().LedgerBalance(t.Context()); err != nil || bal.Balance != "9989000" {
		t.Errorf("balance after paying 1000 + fee 10000 = %+v, %v; want 9989000", bal, err)
	}

	// A P-384 key: refused at start, naming the file and the reason.
	bad := c.NewNodes("p384", 1, "trainer")[0]
	useReplica(t, replica.URL(), bad)
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(k)
	badPath := filepath.Join(t.TempDir(), "p384.pem")
	os.WriteFile(badPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), 0o600)
	if err := bad.EditConfig(func(cfg *config.Config) { cfg.ICP.IdentityPEM = badPath }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err = bad.Start(ctx)
	if err == nil {
		t.Fatalf("a node with a P-384 identity_pem started")
	}
	if logs := bad.Logs() + err.Error(); !strings.Contains(logs, badPath) || !strings.Contains(logs, "curve") {
		t.Errorf("start with a P-384 PEM failed with %v / %s; want the file and its curve named", err, bad.Logs())
	}
}
