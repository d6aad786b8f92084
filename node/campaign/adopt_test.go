package campaign

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/store"
)

// Every round a campaign opens carries the campaign's tag: its ID, the round's number, the
// stopping rules and the best accuracy so far.
func TestRoundsCarryTheCampaignTag(t *testing.T) {
	f := &fakeRounds{accuracy: []float64{0.90, 0.93, 0.92}, rounds: map[string]*announce.Round{}, reports: map[string]*store.ReportRecord{}}
	s, _ := newService(t, f)
	rec, err := s.Begin(t.Context(), Params{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 1, Deadline: "5m"}, Rounds: 3, TargetAccuracy: 0.99, Patience: 4})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, s, rec.ID, Done)
	wantBest := []float64{0, 0.90, 0.93}
	for i, p := range f.opened {
		tag := p.Campaign
		if tag == nil || tag.ID != rec.ID || tag.Index != i+1 || tag.Rounds != 3 || tag.Target != 0.99 || tag.Patience != 4 || tag.RoundSeconds != 300 || tag.Best != wantBest[i] {
			t.Errorf("round %d's tag = %+v, want campaign %s round %d of 3, best %.2f", i+1, tag, rec.ID, i+1, wantBest[i])
		}
		if err := tag.Check(); err != nil {
			t.Errorf("round %d's tag does not validate: %v", i+1, err)
		}
	}
}

// silentCampaign is what a coordinator that re-opened round 2 of another coordinator's
// campaign knows: round 1 done there, round 2 failed (re-opened here) and its own round 2.
func silentCampaign(f *fakeRounds, reward string) (reopened string) {
	tag := func(i int) *announce.CampaignTag {
		return &announce.CampaignTag{ID: "00112233aabbccdd", Index: i, Rounds: 3, Best: 0.9, Reward: reward, RoundSeconds: 120}
	}
	m0, m1 := []byte(fmt.Sprintf("%032d", 100)), []byte(fmt.Sprintf("%032d", 101))
	f.hear(
		announce.Round{ID: fmt.Sprintf("%032x", 0xa1), Model: m0, NewModel: m1, Coordinator: "silent", State: announce.RoundDone, OpenedAt: 1, Campaign: tag(1)},
		announce.Round{ID: fmt.Sprintf("%032x", 0xa2), Model: m1, Coordinator: "silent", State: announce.RoundFailed, Error: "its coordinator went silent", OpenedAt: 2, Campaign: tag(2)},
	)
	id := fmt.Sprintf("%032x", 0xb2)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rounds[id] = &announce.Round{ID: id, Model: m1, Coordinator: "self", State: announce.RoundOpen, Reopens: fmt.Sprintf("%032x", 0xa2), OpenedAt: 3,
		MinUpdates: 2, Rule: "fedavg", Strategy: "fedavgm", ServerLR: 1.2, Campaign: tag(2)}
	return id
}

// A coordinator that re-opened a campaign's round after its coordinator went silent adopts the
// campaign: same ID, the rounds it heard of, the re-opened one, and then the rest, with the
// campaign's rules; it does not pay a reward its operator did not agree to.
func TestAdoptsTheCampaignOfAReopenedRound(t *testing.T) {
	f := &fakeRounds{accuracy: []float64{0.95}, rounds: map[string]*announce.Round{}, reports: map[string]*store.ReportRecord{}}
	s, _ := newService(t, f)
	reopened := silentCampaign(f, "5000")
	r, _ := f.Get(reopened)
	s.Reopened(*r) // the rounds service tells it of the round it re-opened
	deadline := time.Now().Add(10 * time.Second)
	var rec *Record
	for {
		var err error
		if rec, err = s.Get("00112233aabbccdd"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the campaign of the re-opened round was never adopted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if rec.AdoptedFrom != "silent" || len(rec.Rounds) != 3 || rec.Rounds[2].RoundID != reopened || rec.Rounds[2].Index != 2 ||
		rec.Rounds[0].Coordinator != "silent" || rec.Rounds[0].NewModel == "" || rec.Params.Deadline != "2m0s" || rec.Params.Strategy != "fedavgm" {
		t.Fatalf("adopted = %+v", rec)
	}
	if rec.Params.Reward != "" || !strings.Contains(rec.Note, "not paid by this coordinator") {
		t.Errorf("adopted reward = %q (note %q), want none: this node has no ledger and no train.adopt_max_reward", rec.Params.Reward, rec.Note)
	}
	// The re-opened round ends; the adopter runs round 3 and the campaign ends.
	f.mu.Lock()
	r = f.rounds[reopened]
	r.State, r.NewModel = announce.RoundDone, []byte(fmt.Sprintf("%032d", 102))
	f.reports[reopened] = &store.ReportRecord{RoundID: reopened, Metrics: map[string]float64{"accuracy": 0.93}}
	f.mu.Unlock()
	rec = waitState(t, s, rec.ID, Done)
	if len(f.opened) != 1 || f.opened[0].Campaign.Index != 3 || f.opened[0].ModelID != hex.EncodeToString([]byte(fmt.Sprintf("%032d", 102))) {
		t.Fatalf("opened after adoption = %+v, want round 3 on the re-opened round's version", f.opened)
	}
	if !strings.Contains(rec.Why, "ran its 3 rounds") || rec.Best != 0.95 {
		t.Errorf("adopted campaign ended %q with best %.2f, want its 3 rounds and 0.95", rec.Why, rec.Best)
	}
}

// The coordinator that went silent, back (restarted in the middle of a round), sees its round
// re-opened by another coordinator and hands the campaign over: it opens no more rounds of it. A
// coordinator that ran its campaign all along ignores such a claim.
func TestSilentCoordinatorHandsTheCampaignOver(t *testing.T) {
	f := &fakeRounds{accuracy: []float64{0.9, 0.91, 0.92}, rounds: map[string]*announce.Round{}, reports: map[string]*store.ReportRecord{}, hold: make(chan struct{})}
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	newSvc := func() *Service {
		s := New(Config{Poll: 10 * time.Millisecond, Settle: time.Millisecond, Self: "self"}, Deps{Store: st, Rounds: f})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := newSvc()
	rec, err := s.Begin(t.Context(), Params{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 1}, Rounds: 3})
	if err != nil {
		t.Fatal(err)
	}
	first := rec.Rounds[0].RoundID
	claim := func(id string) {
		f.hear(announce.Round{ID: fmt.Sprintf("%032x", len(f.heard)+0xc1), Model: []byte("m0"), Coordinator: "other", State: announce.RoundOpen, Reopens: id,
			Campaign: &announce.CampaignTag{ID: rec.ID, Index: 1, Rounds: 3}})
	}
	// Live all along: a claim changes nothing; its round ends and the next opens here.
	claim(first)
	f.hold <- struct{}{}
	waitFor := func(what string, ok func() bool) {
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("a live coordinator's campaign never opened its second round", func() bool {
		got, _ := s.Get(rec.ID)
		return len(got.Rounds) == 2 && got.State == Running
	})
	second, _ := s.Get(rec.ID)
	// Down in round 2; meanwhile another coordinator re-opens it; back, it hands over.
	s.Close()
	claim(second.Rounds[1].RoundID)
	f.mu.Lock()
	r := f.rounds[second.Rounds[1].RoundID]
	r.State, r.Error = announce.RoundFailed, "the coordinator restarted during this secure round"
	f.mu.Unlock()
	s = newSvc()
	t.Cleanup(func() { s.Close() })
	rec = waitState(t, s, rec.ID, HandedOver)
	if !strings.Contains(rec.Why, "other") || len(f.opened) != 2 {
		t.Fatalf("handed over: %q after %d rounds opened; want the adopter named and no third round", rec.Why, len(f.opened))
	}
	close(f.hold)
}
