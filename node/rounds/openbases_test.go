package rounds

import (
	"testing"

	"github.com/califusion/califusion/config"
)

// TestOpenBases: a round this node coordinates names its base while it is open, and no more
// once it has ended (node/storage keeps an open round's base).
func TestOpenBases(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	if got := n.s.OpenBases(); len(got) != 0 {
		t.Fatalf("OpenBases() with no round = %x, want none", got)
	}
	_, model, round := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m", Rule: "fedavg"})
	if got := n.s.OpenBases(); len(got) != 1 || got[0] != model {
		t.Fatalf("OpenBases() with an open round = %x, want its base %x", got, model)
	}
	lr := n.s.liveRound(round)
	lr.mu.Lock()
	n.s.fail(lr, "test")
	lr.mu.Unlock()
	if got := n.s.OpenBases(); len(got) != 0 {
		t.Errorf("OpenBases() after the round failed = %x, want none", got)
	}
}
