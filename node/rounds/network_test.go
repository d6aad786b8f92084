package rounds

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/kex"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
)

// TestTrainAndSubmitOverNetwork: a trainer that has not heard a round asks the coordinators it
// knows for it (updates/round/1), resolves its model (not in its catalog yet), trains, and submits over updates/submit/2 to the coordinator's
// updates server; the update is accepted, the round aggregates, and the same update again is the
// coordinator's duplicate refusal with its code.
func TestTrainAndSubmitOverNetwork(t *testing.T) {
	mn := mocknet.New() // with Ed25519 identities: a manifest's publisher key is in its peer ID
	t.Cleanup(func() { mn.Close() })
	for i := range 2 {
		priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mn.AddPeer(priv, ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4000+i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	hc, ht := mn.Hosts()[0], mn.Hosts()[1]

	c := newNodeWithKey(t, hc.Peerstore().PrivKey(hc.ID()), config.RoleCoordinator)
	c.s.deps.Kex = kex.NewServer(t.Context(), hc, slog.New(slog.DiscardHandler))
	if err := c.s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, model, round := roundOn(t, c, OpenParams{MinUpdates: 1, Deadline: "10m", Rule: "fedavg"})

	tr := newNodeWithKey(t, ht.Peerstore().PrivKey(ht.ID()), config.RoleTrainer)
	tr.s.deps.Host = ht
	tr.directory.coords = []peer.ID{hc.ID()}
	tr.catalog.remote = c.catalog // the trainer's catalog lacks the model: Train resolves it
	plain, _ := c.models.Plaintext(model)
	tr.models.put(model, plain) // unlocked: it paid
	c.grants.grant(model, ht.ID())

	data := filepath.Join(t.TempDir(), "data.csv")
	os.WriteFile(data, []byte("0,0,0,1,0\n1,0,0,0,1\n0,1,0,0,2\n0,0,1,0,0\n"), 0o600)
	res, err := tr.s.Train(t.Context(), TrainParams{RoundID: round, Data: data, Hook: "builtin"})
	if err != nil {
		t.Fatalf("Train(a round heard of only from its coordinator) = %v", err)
	}
	if _, err := tr.catalog.Get(model); err != nil {
		t.Errorf("the round's model is not in the trainer's catalog after Train: %v", err)
	}
	if r, err := tr.s.Get(round); err != nil || r.Coordinator != hc.ID().String() {
		t.Errorf("the round the trainer asked for = %+v, %v; want it stored", r, err)
	}
	got, err := tr.s.Submit(t.Context(), round, res.UpdateID)
	if err != nil || !got.Accepted || got.Norm <= 0 {
		t.Fatalf("Submit = %+v, %v; want accepted with a norm", got, err)
	}
	waitFor(t, 10*time.Second, func() error {
		r, err := c.s.Get(round)
		if err != nil || r.State != announce.RoundDone {
			return fmt.Errorf("coordinator's round = %+v, %v; want done", r, err)
		}
		return nil
	})
	if _, err := tr.s.Submit(t.Context(), round, res.UpdateID); apierr.CodeOf(err) != apierr.Conflict {
		t.Errorf("Submit to a round that is done = %v, want conflict", err)
	}
}

// TestAnnounceOverGossip: a round opened on a started coordinator reaches a started trainer over
// the rounds topic, and the trainer keeps it (the model's lineage names the coordinator).
func TestAnnounceOverGossip(t *testing.T) {
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	var nodes []*fakeNode
	roles := [][]string{{config.RoleCoordinator}, {config.RoleTrainer}}
	for i := range 2 {
		priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		h, err := mn.AddPeer(priv, ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4100+i)))
		if err != nil {
			t.Fatal(err)
		}
		n := newNodeWithKey(t, priv, roles[i]...)
		n.s.deps.Host = h
		if n.s.deps.PubSub, err = pubsub.NewGossipSub(t.Context(), h); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	c, tr := nodes[0], nodes[1]
	for _, n := range nodes {
		if err := n.s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := fl.NewLogReg(4, 3).Encode()
	base := c.publishRoot(t, "base", raw)
	tr.catalog.addSigned(t, base.Signed)
	round, err := c.s.Open(t.Context(), OpenParams{ModelID: modelHex(base.ID), MinUpdates: 1, Deadline: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	// The topic's mesh forms within a heartbeat or two, and what was published before is not
	// heard: announce again as reannounce does, until it is.
	waitFor(t, 15*time.Second, func() error {
		if _, err := tr.s.Get(round); err == nil {
			return nil
		}
		r, err := c.s.Get(round)
		if err != nil {
			t.Fatal(err)
		}
		c.s.announce(*r)
		return fmt.Errorf("the trainer has not heard round %s", round)
	})
	rs, _ := tr.s.List(&base.ID)
	if len(rs) == 0 || rs[0].Coordinator != c.self.String() || rs[0].State != announce.RoundOpen {
		t.Errorf("rounds heard = %+v, want open rounds of %s", rs, c.self)
	}
}
