package rounds

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Rounds are run only by a coordinator the base model's lineage root authorises: a trainer
// refuses to train for anyone else's round, and a coordinator refuses to open one on a lineage
// that does not name it. (The publisher's side — a coordinator's root names itself by default,
// and a version of a lineage that does not name this node is not published — is the
// publisher's, tested where it is.)
func TestRoundsAuthorisedByLineage(t *testing.T) {
	n := newNode(t, config.RoleCoordinator, config.RoleTrainer)
	raw, err := fl.NewLogReg(4, 3).Encode()
	if err != nil {
		t.Fatal(err)
	}
	rec := n.publishRoot(t, "base", raw)
	stranger, named := contenttest.NewSigner(t), contenttest.NewSigner(t)
	round := func(id string, coord peer.ID, model []byte) *announce.Round {
		now := time.Now()
		return &announce.Round{ID: id, Model: model, Coordinator: coord.String(), MinUpdates: 1, Deadline: now.Add(time.Hour).UnixMilli(),
			Rule: "fedavg", State: announce.RoundOpen, OpenedAt: now.UnixMilli(), Seq: 1}
	}
	rogue := round("0123456789abcdef0123456789abcdef", stranger.ID, rec.ID[:])
	if err := n.s.authorised(rogue); apierr.CodeOf(err) != apierr.Role {
		t.Errorf("authorised(stranger's round) = %v, want code %d", err, apierr.Role)
	}
	// Stored anyway (as if it arrived before the model did): train_run still refuses it.
	if err := n.s.remember(rogue); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data.csv")
	os.WriteFile(data, []byte("0,0,0,1,0\n1,0,0,0,1\n"), 0o600)
	if _, err := n.s.Train(t.Context(), TrainParams{RoundID: rogue.ID, Data: data}); apierr.CodeOf(err) != apierr.Role {
		t.Errorf("train_run(stranger's round) = %v, want code %d", err, apierr.Role)
	}
	if err := n.s.authorised(round("1123456789abcdef0123456789abcdef", n.self, rec.ID[:])); err != nil {
		t.Errorf("authorised(round by the named coordinator) = %v", err)
	}
	var unknown [32]byte
	if err := n.s.authorised(round("2123456789abcdef0123456789abcdef", stranger.ID, unknown[:])); !errors.Is(err, errRoundModelUnknown) {
		t.Errorf("authorised(round of an unknown model) = %v, want errRoundModelUnknown", err)
	}

	// Another publisher's lineage naming someone else: this coordinator may not open rounds on
	// it, the one it names may.
	otherRoot, otherID := stranger.Sign(t, versionFor("m", []byte("x"), named.ID))
	n.catalog.addSigned(t, otherRoot)
	_, err = n.s.Open(t.Context(), OpenParams{ModelID: modelHex(otherID), MinUpdates: 1, Deadline: "10m"})
	if apierr.CodeOf(err) != apierr.Role {
		t.Errorf("round_open on a lineage that does not name this coordinator = %v, want code %d", err, apierr.Role)
	}
	if err := n.s.authorised(round("3123456789abcdef0123456789abcdef", named.ID, otherID[:])); err != nil {
		t.Errorf("authorised(round by the coordinator the other lineage names) = %v", err)
	}
	if err := n.s.authorised(round("4123456789abcdef0123456789abcdef", stranger.ID, otherID[:])); err != nil {
		t.Errorf("authorised(round by the other lineage's own publisher) = %v", err)
	}
}
