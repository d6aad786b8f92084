package rounds

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A coordinator re-opens a round of its lineage whose coordinator went silent: only once the
// silence lasted train.failover_after, only when it is the first live coordinator of the lineage
// after the silent one, from the round as the silent coordinator committed to it when it opened
// (not the later snapshot it heard); the new round names the old one, the old one is marked
// failed here, and the new round's own commitment is anchored.
func TestFailoverReopensFromTheAnchoredRound(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	n.s.cfg.Train.FailoverAfter = config.Duration{Duration: time.Minute}
	anchors := &recordingAnchoring{}
	n.s.deps.Anchoring = anchors
	silent := contenttest.NewSigner(t)
	raw, err := fl.NewLogReg(4, 3).Encode()
	if err != nil {
		t.Fatal(err)
	}
	rec := n.publishRoot(t, "base", raw, silent.ID, n.self)
	notOurs := n.publishRoot(t, "other", raw, silent.ID)

	now := time.Now()
	round := func(id string, model []byte, min int) announce.Round {
		return announce.Round{ID: id, Model: model, Coordinator: silent.ID.String(), MinUpdates: min, Deadline: now.Add(time.Hour).UnixMilli(),
			Rule: fl.RuleFedAvg, ClipNorm: 7, State: announce.RoundOpen, OpenedAt: now.UnixMilli(), Seq: 1}
	}
	// As it opened (anchored): min_updates 3; as heard later: 2 (a later snapshot, say).
	opened := round("0123456789abcdef0123456789abcdef", rec.ID[:], 3)
	opened.Campaign = &announce.CampaignTag{ID: "00112233aabbccdd", Index: 2, Rounds: 5, Best: 0.8}
	body, _ := opened.Encode()
	sum := sha256.Sum256(body)
	anchors.cs = append(anchors.cs, calimero.Commitment{Kind: calimero.KindRound, Round: opened.ID, Model: rec.ID[:], Hashes: [][]byte{sum[:]}, Body: body, Signer: []byte(silent.ID)})
	heard := round(opened.ID, rec.ID[:], 2)
	heard.Seq = 5
	other := round("fedcba9876543210fedcba9876543210", notOurs.ID[:], 1)
	for _, r := range []*announce.Round{&heard, &other} {
		if err := n.s.remember(r); err != nil {
			t.Fatal(err)
		}
		n.s.heardRound(r)
	}

	if got := n.s.orphans(time.Minute); len(got) != 0 {
		t.Fatalf("orphans right after the last announcement = %v, want none", got)
	}
	// A minute of silence (no announcement, no connection: the fake has no network).
	n.s.mu.Lock()
	for id := range n.s.heard {
		n.s.heard[id] = now.Add(-2 * time.Minute)
	}
	n.s.mu.Unlock()
	got := n.s.orphans(time.Minute)
	if len(got) != 1 || got[0].ID != opened.ID {
		t.Fatalf("orphans after the silence = %v, want only the round of the lineage this node coordinates", got)
	}
	id, source, err := n.s.reopen(t.Context(), got[0])
	if err != nil || source != "the anchored round commitment" {
		t.Fatalf("reopen = %s from %q, %v; want it from the anchored round commitment", id, source, err)
	}
	r, err := n.s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Reopens != opened.ID || r.MinUpdates != 3 || r.ClipNorm != 7 || r.Coordinator != n.self.String() || string(r.Model) != string(rec.ID[:]) {
		t.Errorf("the re-opened round = %+v, want the anchored round's parameters (min_updates 3), this coordinator and reopens %s", r, opened.ID)
	}
	if r.Campaign == nil || *r.Campaign != *opened.Campaign {
		t.Errorf("the re-opened round's campaign = %+v, want the anchored round's %+v (the campaign goes on here)", r.Campaign, opened.Campaign)
	}
	old, _ := n.s.Get(opened.ID)
	if old.State != announce.RoundFailed || old.Error == "" {
		t.Errorf("the silent round here = %s %q, want failed with why", old.State, old.Error)
	}
	if got := n.s.orphans(time.Minute); len(got) != 0 {
		t.Errorf("orphans after the re-opening = %v, want none (it is re-opened once)", got)
	}
	// The new round's commitment is anchored too, so it can fail over in turn.
	waitFor(t, 10*time.Second, func() error {
		for _, c := range anchors.all() {
			if c.Kind == calimero.KindRound && c.Round == id {
				return nil
			}
		}
		return fmt.Errorf("no round commitment for %s", id)
	})
}

// The first live coordinator of the lineage after the silent one re-opens: not this node when
// another coordinator before it is alive, nor when this node is not a coordinator of it.
func TestFailoverPicksTheFirstLiveCoordinator(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	silent, other := contenttest.NewSigner(t).ID, contenttest.NewSigner(t).ID
	for _, c := range []struct {
		coords []peer.ID
		want   peer.ID
	}{
		{[]peer.ID{silent, n.self, other}, n.self},
		{[]peer.ID{n.self, silent}, n.self},
		{[]peer.ID{silent, other, n.self}, n.self}, // other is not connected (no network here)
		{[]peer.ID{silent, other}, ""},
	} {
		if got := n.s.firstAlive(c.coords, silent); got != c.want {
			t.Errorf("firstAlive(%v) = %s, want %s", c.coords, got, c.want)
		}
	}
}

// A round re-opened by another coordinator stays failed here: its coordinator, back from its
// silence, cannot announce it open again.
func TestSupersededRoundStaysFailed(t *testing.T) {
	n := newNode(t, config.RoleTrainer)
	silent, other := contenttest.NewSigner(t), contenttest.NewSigner(t)
	now := time.Now()
	old := announce.Round{ID: "0123456789abcdef0123456789abcdef", Model: make([]byte, 32), Coordinator: silent.ID.String(), MinUpdates: 1,
		Deadline: now.Add(time.Hour).UnixMilli(), Rule: fl.RuleFedAvg, State: announce.RoundOpen, OpenedAt: now.UnixMilli(), Seq: 1}
	if err := n.s.remember(&old); err != nil {
		t.Fatal(err)
	}
	re := old
	re.ID, re.Coordinator, re.Reopens = "fedcba9876543210fedcba9876543210", other.ID.String(), old.ID
	n.s.superseded(&re)
	back := old
	back.Seq = 10 // its coordinator, back, announces it again
	if err := n.s.remember(&back); err != nil {
		t.Fatal(err)
	}
	if r, _ := n.s.Get(old.ID); r.State != announce.RoundFailed || !strings.Contains(r.Error, re.ID) {
		t.Fatalf("the superseded round after its coordinator announced it again = %s %q, want failed naming %s", r.State, r.Error, re.ID)
	}
}

// On the coordinator that went silent, a round it resumed after its restart ends when it hears
// the round that re-opened it; a round it ran all along is kept (another coordinator cannot end
// it by claiming so).
func TestResumedRoundEndsWhenReopenedElsewhere(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	_, _, kept := roundOn(t, n, OpenParams{MinUpdates: 2, Deadline: "10m", Rule: "fedavg"})
	other := contenttest.NewSigner(t)
	claim := func(id string) {
		r, err := n.s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		re := *r
		re.ID, re.Coordinator, re.Reopens = fmt.Sprintf("%032x", len(id)+len(r.Coordinator)+int(r.Seq)), other.ID.String(), id
		n.s.superseded(&re)
	}
	claim(kept)
	if r, _ := n.s.Get(kept); r.State != announce.RoundOpen || n.s.liveRound(kept) == nil {
		t.Fatalf("a round this coordinator runs all along = %s after another's claim, want open", r.State)
	}
	n.restart(t)
	waitFor(t, 5*time.Second, func() error {
		if n.s.liveRound(kept) == nil {
			return fmt.Errorf("round %s not resumed", kept)
		}
		return nil
	})
	claim(kept)
	if r, _ := n.s.Get(kept); r.State != announce.RoundFailed || !strings.Contains(r.Error, "went silent") || n.s.liveRound(kept) != nil {
		t.Fatalf("the resumed round after it was re-opened elsewhere = %s %q, want failed", r.State, r.Error)
	}
}

// An attacker coordinator of the lineage claims to have re-opened the round of a coordinator
// this trainer is connected to: not believed, the round stays open. Once that coordinator is out
// of reach, the same claim is.
func TestReopenClaimAboutALiveCoordinator(t *testing.T) {
	_, tr, _, hosts := reportNet(t)
	now := time.Now()
	old := announce.Round{ID: "0123456789abcdef0123456789abcdef", Model: make([]byte, 32), Coordinator: hosts[0].ID().String(), MinUpdates: 1,
		Deadline: now.Add(time.Hour).UnixMilli(), Rule: fl.RuleFedAvg, State: announce.RoundOpen, OpenedAt: now.UnixMilli(), Seq: 1}
	if err := tr.s.remember(&old); err != nil {
		t.Fatal(err)
	}
	claim := old
	claim.ID, claim.Coordinator, claim.Reopens = "fedcba9876543210fedcba9876543210", hosts[2].ID().String(), old.ID
	tr.s.superseded(&claim)
	if r, _ := tr.s.Get(old.ID); r.State != announce.RoundOpen {
		t.Fatalf("round of a connected coordinator after an attacker's claim = %s %q, want open", r.State, r.Error)
	}
	if err := hosts[1].Network().ClosePeer(hosts[0].ID()); err != nil {
		t.Fatal(err)
	}
	tr.s.superseded(&claim)
	if r, _ := tr.s.Get(old.ID); r.State != announce.RoundFailed {
		t.Fatalf("round of an unreachable coordinator after the claim = %s, want failed", r.State)
	}
}
