package e2e

import (
	"encoding/hex"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/node"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/keys"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/store"
)

// TestThresholdEscrow: a publisher escrows its model 2-of-3 across three coordinators. A trainer
// pays once and unlocks from two shares; with one coordinator killed a second trainer still
// unlocks; with two killed a third trainer's unlock fails with one clear error and pays nothing,
// however often it retries. Afterwards no coordinator's datadir holds the whole key.
func TestThresholdEscrow(t *testing.T) {
	replica := startReplica(t)
	c := newCluster(t)
	pub := c.NewNodes("pub", 1, "publisher")[0]
	coords := c.NewNodes("coord", 3, "coordinator")
	tr := c.NewNodes("tr", 3, "trainer")
	all := append(append([]*harness.Node{pub}, coords...), tr...)
	useReplica(t, replica.URL(), all...)
	c.start(coords[0])
	for _, n := range all[2:] {
		c.start(n, "--bootstrap", coords[0].P2PAddr())
	}
	c.start(pub, "--bootstrap", coords[0].P2PAddr())
	for _, n := range tr {
		replica.Mint(principal.MustDecode(n.Info().ICPPrincipal), 10_000_000)
	}
	// The publisher deposits with, and every trainer asks, each coordinator: all must know them.
	for _, co := range coords {
		var others []*harness.Node
		for _, n := range all {
			if n != co {
				others = append(others, n)
			}
		}
		waitHeard(t, co, others...)
	}
	path, sum := writeRandom(t, 1<<20)
	var ids []string
	for _, co := range coords {
		ids = append(ids, co.Info().PeerID)
	}
	res, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "split", Price: "1000", Coordinators: ids, Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Escrowed != 3 || res.Threshold != 2 {
		t.Fatalf("model_publish = %+v, want 3 coordinators holding shares of a 2-of-3 key", res)
	}
	spent := func(n *harness.Node) *big.Int {
		b, err := n.Client().LedgerBalance(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		v, _ := new(big.Int).SetString(b.Balance, 10)
		return new(big.Int).Sub(big.NewInt(10_000_000), v)
	}
	fee := func() *big.Int {
		b, _ := tr[0].Client().LedgerBalance(t.Context())
		f, ok := new(big.Int).SetString(b.Fee, 10)
		if !ok {
			f = new(big.Int)
		}
		return f
	}()
	onePayment := new(big.Int).Add(big.NewInt(1000), fee)
	unlockAndExport := func(n *harness.Node) {
		t.Helper()
		waitFor(t, 30*time.Second, func() error { _, err := n.Client().ModelGet(t.Context(), res.ModelID); return err })
		job, err := n.Client().ModelFetch(t.Context(), res.ModelID)
		if err != nil {
			t.Fatal(err)
		}
		waitJob(t, n, job.JobID, 30*time.Second)
		if _, err := n.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: res.ModelID}); err != nil {
			t.Fatalf("%s model_unlock = %v", n.Name, err)
		}
		exp, err := n.Client().ModelExport(t.Context(), res.ModelID, filepath.Join(t.TempDir(), n.Name+".bin"))
		if err != nil || exp.SHA256 != sum {
			t.Fatalf("%s export = %+v, %v; want sha256 %s", n.Name, exp, err, sum)
		}
		if got := spent(n); got.Cmp(onePayment) != 0 {
			t.Errorf("%s spent %s, want one payment of %s", n.Name, got, onePayment)
		}
	}
	unlockAndExport(tr[0])

	// One coordinator down: two shares still reach the second trainer.
	if err := coords[2].Kill(); err != nil {
		t.Fatal(err)
	}
	unlockAndExport(tr[1])

	// Two down: one clear error, nothing paid, on every retry.
	if err := coords[1].Kill(); err != nil {
		t.Fatal(err)
	}
	third := tr[2]
	waitFor(t, 30*time.Second, func() error { _, err := third.Client().ModelGet(t.Context(), res.ModelID); return err })
	for range 2 {
		_, err := third.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: res.ModelID})
		if adminrpc.CodeOf(err) != adminrpc.CodeUnavailable || !strings.Contains(err.Error(), "only 1 of the 3 coordinators holding shares") || !strings.Contains(err.Error(), "2 are needed") || !strings.Contains(err.Error(), "nothing was paid") {
			t.Errorf("model_unlock with 1 of 3 coordinators = %v, want unavailable: 1 of 3 answered, 2 needed, nothing paid", err)
		}
		if got := spent(third); got.Sign() != 0 {
			t.Errorf("the third trainer spent %s on a failed unlock, want nothing", got)
		}
	}

	// The publisher's retry reports who still lacks a share.
	esc, err := pub.Client().ModelEscrow(t.Context(), adminrpc.ModelEscrowParams{ModelID: res.ModelID})
	if err != nil || esc.Holders != 3 || esc.Deposited != 1 || esc.Needed != 2 || len(esc.Failed) != 2 {
		t.Errorf("model_escrow with two coordinators down = %+v, %v; want 1 of 3 deposited, 2 needed, 2 failed", esc, err)
	}

	// Audit the datadirs, every node stopped: the publisher keeps the key, no coordinator does.
	if err := c.StopAll(); err != nil {
		t.Fatal(err)
	}
	raw, _ := hex.DecodeString(res.ModelID)
	id := content.ModelID(raw)
	k := func() content.Key {
		st, kr := openKeyring(t, pub)
		defer st.Close()
		k, err := kr.Get(id)
		if err != nil {
			t.Fatalf("the publisher's keyring has no key of its model: %v", err)
		}
		return k
	}()
	for i, co := range coords {
		st, kr := openKeyring(t, co)
		if err := kr.StoredKeys(func(got content.ModelID, key content.Key) error {
			if key == k || got == id {
				t.Errorf("coordinator %d's datadir stores the whole key of the threshold model", i)
			}
			return nil
		}); err != nil {
			t.Errorf("coordinator %d: read stored keys: %v", i, err)
		}
		if idx, y, err := kr.GetShare(id); err != nil || idx != uint(i) || len(y) != content.KeySize {
			t.Errorf("coordinator %d's share: index %d, %v; want its own share", i, idx, err)
		}
		st.Close()
	}
}

// openKeyring opens a stopped node's store and keyring as the node does.
func openKeyring(t *testing.T, n *harness.Node) (*store.Store, *keys.Keyring) {
	t.Helper()
	return openKeyringAt(t, n.Name, n.Datadir)
}

// openKeyringAt opens the store and keyring of the stopped node name whose datadir is dir.
func openKeyringAt(t *testing.T, name, dir string) (*store.Store, *keys.Keyring) {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, node.StoreDir), store.Options{})
	if err != nil {
		t.Fatalf("open %s's store: %v", name, err)
	}
	master, err := keys.LoadMasterKey(filepath.Join(dir, keys.MasterKeyFile))
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	kr, err := keys.NewKeyring(master, st)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return st, kr
}

// TestCoordinatorUpdate: the publisher of a 2-of-2 lineage adds a third coordinator and raises
// the threshold to 3 (model_coordinators); every coordinator, old and new, accepts the signed
// update, the seq counts up, and a non-publisher cannot change the set.
func TestCoordinatorUpdate(t *testing.T) {
	c := newCluster(t)
	pub := c.NewNodes("pub", 1, "publisher")[0]
	coords := c.NewNodes("coord", 3, "coordinator")
	c.start(coords[0])
	for _, n := range append([]*harness.Node{pub}, coords[1:]...) {
		c.start(n, "--bootstrap", coords[0].P2PAddr())
	}
	for _, co := range coords {
		var others []*harness.Node
		for _, n := range append([]*harness.Node{pub}, coords...) {
			if n != co {
				others = append(others, n)
			}
		}
		waitHeard(t, co, others...)
	}
	path, _ := writeRandom(t, 64<<10)
	ids := []string{coords[0].Info().PeerID, coords[1].Info().PeerID, coords[2].Info().PeerID}
	res, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "grow", Price: "0", Coordinators: ids[:2], Threshold: 2})
	if err != nil || res.Escrowed != 2 {
		t.Fatalf("model_publish = %+v, %v", res, err)
	}
	for seq, th := range []uint{3, 2} {
		up, err := pub.Client().ModelCoordinators(t.Context(), adminrpc.ModelCoordinatorsParams{ModelID: res.ModelID, Coordinators: ids, Threshold: th})
		if err != nil || up.Seq != uint64(seq+1) || up.Accepted != 3 || len(up.Coordinators) != 3 || up.Threshold != th {
			t.Fatalf("model_coordinators #%d = %+v, %v; want seq %d accepted by all three", seq+1, up, err, seq+1)
		}
	}
	if _, err := coords[0].Client().ModelCoordinators(t.Context(), adminrpc.ModelCoordinatorsParams{ModelID: res.ModelID, Coordinators: ids[:1]}); adminrpc.CodeOf(err) != adminrpc.CodeRole {
		t.Errorf("model_coordinators by a coordinator = %v, want code %d", err, adminrpc.CodeRole)
	}
}
