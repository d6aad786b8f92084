package node

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Rounds are run only by a coordinator the base model's lineage root authorises: a trainer
// refuses to train for anyone else's round, and a coordinator refuses to open one on a lineage
// that does not name it.
func TestRoundsAuthorisedByLineage(t *testing.T) {
	n := startNode(t, "publisher", "coordinator", "trainer")
	raw, err := fl.NewLogReg(4, 3).Encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "base.safetensors")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := n.models.publish(t.Context(), PublishParams{Path: path, Name: "base", Price: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Manifest.Names(n.host.ID()) {
		t.Fatalf("a coordinator's root names %v, want itself by default", rec.Manifest.CoordinatorIDs())
	}
	stranger, named := newSigner(t), newSigner(t)
	round := func(id string, coord peer.ID, model []byte) *announce.Round {
		now := time.Now()
		return &announce.Round{ID: id, Model: model, Coordinator: coord.String(), MinUpdates: 1, Deadline: now.Add(time.Hour).UnixMilli(),
			Rule: "fedavg", State: announce.RoundOpen, OpenedAt: now.UnixMilli(), Seq: 1}
	}
	rogue := round("0123456789abcdef0123456789abcdef", stranger.id, rec.ID[:])
	if err := n.rounds.authorised(rogue); adminrpc.CodeOf(err) != adminrpc.CodeRole {
		t.Errorf("authorised(stranger's round) = %v, want code %d", err, adminrpc.CodeRole)
	}
	// Stored anyway (as if it arrived before the model did): train_run still refuses it.
	if err := n.rounds.remember(rogue); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data.csv")
	os.WriteFile(data, []byte("0,0,0,1,0\n1,0,0,0,1\n"), 0o600)
	if _, err := n.rounds.trainRun(t.Context(), adminrpc.TrainRunParams{RoundID: rogue.ID, Data: data}); adminrpc.CodeOf(err) != adminrpc.CodeRole {
		t.Errorf("train_run(stranger's round) = %v, want code %d", err, adminrpc.CodeRole)
	}
	if err := n.rounds.authorised(round("1123456789abcdef0123456789abcdef", n.host.ID(), rec.ID[:])); err != nil {
		t.Errorf("authorised(round by the named coordinator) = %v", err)
	}
	var unknown [32]byte
	if err := n.rounds.authorised(round("2123456789abcdef0123456789abcdef", stranger.id, unknown[:])); !errors.Is(err, errRoundModelUnknown) {
		t.Errorf("authorised(round of an unknown model) = %v, want errRoundModelUnknown", err)
	}

	// Another publisher's lineage naming someone else: this coordinator may not open rounds on
	// it, the one it names may.
	otherRoot, otherID := stranger.sign(t, version{coords: []peer.ID{named.id}})
	if _, _, err := n.models.add(otherRoot, "test"); err != nil {
		t.Fatal(err)
	}
	_, err = n.rounds.open(t.Context(), adminrpc.RoundOpenParams{ModelID: hex.EncodeToString(otherID[:]), MinUpdates: 1, Deadline: "10m"})
	if adminrpc.CodeOf(err) != adminrpc.CodeRole {
		t.Errorf("round_open on a lineage that does not name this coordinator = %v, want code %d", err, adminrpc.CodeRole)
	}
	if _, err := n.models.publish(t.Context(), PublishParams{Path: path, Name: "aggregate", Parent: &otherID}); adminrpc.CodeOf(err) != adminrpc.CodeRole {
		t.Errorf("publishing a version of a lineage that does not name this node = %v, want code %d", err, adminrpc.CodeRole)
	}
	if v, err := n.models.publish(t.Context(), PublishParams{Path: path, Name: "aggregate", Parent: &rec.ID}); err != nil || v.Lineage() != rec.ID {
		t.Errorf("publishing a version of its own lineage = %v, %v; want lineage %x", v, err, rec.ID[:4])
	}
	if err := n.rounds.authorised(round("3123456789abcdef0123456789abcdef", named.id, otherID[:])); err != nil {
		t.Errorf("authorised(round by the coordinator the other lineage names) = %v", err)
	}
	if err := n.rounds.authorised(round("4123456789abcdef0123456789abcdef", stranger.id, otherID[:])); err != nil {
		t.Errorf("authorised(round by the other lineage's own publisher) = %v", err)
	}
}
