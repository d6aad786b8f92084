package e2e

import (
	"encoding/base64"
	"encoding/hex"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/protocols/calimero/calimerotest"
)

// TestAnchoringRequire: A publishes and anchors through one Calimero member; B reads through a
// lagging replica under `require`, so its fetch waits for the anchor; an anchor overwritten by
// another member makes B refuse the model.
func TestAnchoringRequire(t *testing.T) {
	sim, err := calimerotest.New(calimerotest.Options{Nodes: 2, ReplicationDelay: 8 * time.Second, Users: map[string]string{"cf": "secret"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	ctxID := sim.CreateContext()
	creds := t.TempDir() + "/calimero.cred"
	writeFile(t, creds, "cf:secret\n")

	c := newCluster(t)
	a := c.NewNodes("a", 1, "publisher")[0]
	b := c.NewNodes("b", 1, "trainer")[0]
	for i, n := range []struct {
		node interface {
			EditConfig(func(*config.Config)) error
		}
		policy string
	}{{a, "prefer"}, {b, "require"}} {
		member := sim.Node(i)
		if err := n.node.EditConfig(func(cfg *config.Config) {
			cfg.Calimero = config.Calimero{Anchoring: n.policy, URL: member.URL(), ContextID: ctxID, ExecutorKey: member.Identity(), CredentialsFile: creds}
		}); err != nil {
			t.Fatal(err)
		}
	}
	c.start(a)
	c.start(b, "--bootstrap", a.P2PAddr())

	path, _ := writeRandom(t, 2<<20)
	res, err := a.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "anchored", Price: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Anchored {
		t.Errorf("model_publish anchored = false, want true")
	}
	waitFor(t, 30*time.Second, func() error { _, err := b.Client().ModelGet(t.Context(), res.ModelID); return err })
	// B's Calimero member has not received the anchor yet (8 s replication delay).
	if st, err := b.Client().AnchorVerify(t.Context(), res.ModelID); err != nil || st.State != calimero.StateMissing {
		t.Fatalf("anchor_verify on B before replication = %+v, %v; want missing", st, err)
	}
	start := time.Now()
	job, err := b.Client().ModelFetch(t.Context(), res.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := b.Client().JobStatus(t.Context(), job.JobID); st.State == "done" {
		t.Errorf("fetch under require finished before the anchor reached B's member")
	}
	waitJob(t, b, job.JobID, 30*time.Second)
	t.Logf("fetch under require finished %v after it was asked for, once the anchor replicated", time.Since(start))
	st, err := b.Client().AnchorVerify(t.Context(), res.ModelID)
	if err != nil || st.State != calimero.StateVerified {
		t.Errorf("anchor_verify on B = %+v, %v; want verified", st, err)
	}

	// Another model whose anchor another member replaces with a different (base64) value.
	path2, _ := writeRandom(t, 1<<20)
	res2, err := a.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path2, Name: "tampered", Price: "1"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := hex.DecodeString(res2.ModelID)
	sim.Node(1).Overwrite(ctxID, calimero.AnchorKey([32]byte(raw)), base64.StdEncoding.EncodeToString([]byte("not the manifest")))
	waitFor(t, 30*time.Second, func() error { _, err := b.Client().ModelGet(t.Context(), res2.ModelID); return err })
	st, err = b.Client().AnchorVerify(t.Context(), res2.ModelID)
	if err != nil || st.State != calimero.StateInvalid || st.Error == "" {
		t.Errorf("anchor_verify of an overwritten anchor = %+v, %v; want invalid with a reason", st, err)
	}
	if _, err := b.Client().ModelFetch(t.Context(), res2.ModelID); adminrpc.CodeOf(err) != adminrpc.CodeIntegrity {
		t.Errorf("model_fetch of a model with an invalid anchor under require = %v, want code %d", err, adminrpc.CodeIntegrity)
	}
	m, err := b.Client().ModelGet(t.Context(), res2.ModelID)
	if err != nil || m.Anchor.State != calimero.StateInvalid {
		t.Errorf("model_get anchor = %+v, %v; want invalid", m.Anchor, err)
	}

	// A node connected to nobody learns the validly anchored model from Calimero alone (through
	// B's member, which holds both the first anchor and the overwritten one by now).
	loner := c.NewNodes("loner", 1, "trainer")[0]
	if err := loner.EditConfig(func(cfg *config.Config) {
		cfg.Calimero = config.Calimero{Anchoring: "prefer", URL: sim.Node(1).URL(), ContextID: ctxID, ExecutorKey: sim.Node(1).Identity(), CredentialsFile: creds}
	}); err != nil {
		t.Fatal(err)
	}
	c.start(loner)
	waitFor(t, 30*time.Second, func() error {
		_, err := loner.Client().ModelGet(t.Context(), res.ModelID)
		return err
	})
	if _, err := loner.Client().ModelGet(t.Context(), res2.ModelID); adminrpc.CodeOf(err) != adminrpc.CodeNotFound {
		t.Errorf("loner's catalog has the model whose anchor was overwritten (%v), want it skipped", err)
	}
	if peers, _ := loner.Client().NodePeers(t.Context()); len(peers) != 0 {
		t.Errorf("loner has %d peers, want none (the test needs it isolated)", len(peers))
	}
}
