package rounds

import (
	"errors"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/node/internal/gossip"
	"github.com/califusion/califusion/protocols/announce"
)

// TestValidateRounds: a round announcement is delivered and relayed only when its model is known
// here and its lineage names the coordinator (else ignored: not stored, not relayed, its sender
// not scored down), only from its coordinator, and only within the per-coordinator rate; this
// node's own rounds always pass.
func TestValidateRounds(t *testing.T) {
	n := newNode(t, config.RoleTrainer)
	raw, err := fl.NewLogReg(4, 3).Encode()
	if err != nil {
		t.Fatal(err)
	}
	coord := contenttest.NewSigner(t)
	known := n.publishRoot(t, "base", raw, coord.ID)
	roundBy := func(by string, model []byte, id string) []byte {
		r := announce.Round{ID: id, Model: model, Coordinator: by, MinUpdates: 1, Rule: fl.RuleFedAvg,
			State: announce.RoundOpen, Deadline: time.Now().Add(time.Hour).UnixMilli(), OpenedAt: time.Now().UnixMilli()}
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	round := func(model []byte, id string) []byte { return roundBy(coord.ID.String(), model, id) }
	if v, err := n.s.validate(coord.ID, round(known.ID[:], "00000000000000000000000000000001")); err != nil || v.(*announce.Round).Coordinator != coord.ID.String() {
		t.Fatalf("a round on a known model = %v, %v; want it accepted", v, err)
	}
	unknown := make([]byte, 32)
	unknown[0] = 1
	if _, err := n.s.validate(coord.ID, round(unknown, "00000000000000000000000000000002")); !errors.Is(err, gossip.ErrIgnore) {
		t.Errorf("a round on an unknown model = %v, want it ignored", err)
	}
	stranger := contenttest.NewSigner(t)
	if _, err := n.s.validate(stranger.ID, roundBy(stranger.ID.String(), known.ID[:], "00000000000000000000000000000006")); !errors.Is(err, gossip.ErrIgnore) {
		t.Errorf("a round by a coordinator the model's lineage does not name = %v, want it ignored", err)
	}
	if _, err := n.s.validate(n.self, roundBy(n.self.String(), unknown, "00000000000000000000000000000005")); err != nil {
		t.Errorf("this node's own round on a model it does not list = %v, want it accepted", err)
	}
	if _, err := n.s.validate(n.self, round(known.ID[:], "00000000000000000000000000000003")); err == nil {
		t.Errorf("a round relayed under another author than its coordinator was accepted")
	}
	// The burst is spent (two calls above, one refused after decoding counts too); beyond it the
	// coordinator is refused before its message is parsed.
	refused := 0
	for range roundBurst + 1 {
		if _, err := n.s.validate(coord.ID, round(known.ID[:], "00000000000000000000000000000004")); errors.Is(err, errRoundRate) {
			refused++
		}
	}
	if refused == 0 {
		t.Errorf("%d announcements in a row from one coordinator were all accepted, want the rate limit to refuse some", roundBurst+1)
	}
}
