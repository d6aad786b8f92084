package autotrain

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fakeRounds knows rounds with their standings and records what is trained and submitted.
type fakeRounds struct {
	mu        sync.Mutex
	rounds    []announce.Round
	joinable  map[string]bool
	failTrain map[string]bool
	busy      map[string]int // Train answers unavailable this many more times
	trained   []string
	submitted []string
}

func (f *fakeRounds) List(*content.ModelID) ([]announce.Round, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rounds), nil
}

func (f *fakeRounds) Standings(rs []announce.Round, _ time.Time) ([]rounds.Standing, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]rounds.Standing, len(rs))
	for i, r := range rs {
		out[i].Joinable = f.joinable[r.ID]
	}
	return out, nil
}

func (f *fakeRounds) Train(_ context.Context, p rounds.TrainParams) (rounds.TrainResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trained = append(f.trained, p.RoundID)
	if f.failTrain[p.RoundID] {
		return rounds.TrainResult{}, errors.New("hook failed")
	}
	if f.busy[p.RoundID] > 0 {
		f.busy[p.RoundID]--
		return rounds.TrainResult{}, apierr.Errorf(apierr.Unavailable, "the base version is not fetched yet")
	}
	return rounds.TrainResult{UpdateID: "u-" + p.RoundID, Samples: 10}, nil
}

func (f *fakeRounds) Submit(_ context.Context, round, update string) (rounds.SubmitResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submitted = append(f.submitted, round)
	f.joinable[round] = false // submitted: no longer joinable
	return rounds.SubmitResult{Accepted: true}, nil
}

type fakeCatalog map[content.ModelID]*catalog.Record

func (c fakeCatalog) Get(id content.ModelID) (*catalog.Record, error) {
	if r, ok := c[id]; ok {
		return r, nil
	}
	return nil, errors.New("not found")
}

type fakeKeys map[content.ModelID]bool

func (k fakeKeys) Has(id content.ModelID) bool { return k[id] }

// The trainer joins the rounds it may join on lineages it paid for, once each, within its
// hourly cap and outside its quiet hours; a round whose training fails is not retried.
func TestAutoTrainJoins(t *testing.T) {
	pub := contenttest.NewSigner(t)
	coord := contenttest.NewSigner(t).ID
	root := func() *catalog.Record {
		signed, id := pub.Sign(t, contenttest.Version{Coords: []peer.ID{coord}})
		m, _, err := content.Open(signed)
		if err != nil {
			t.Fatal(err)
		}
		r := &catalog.Record{ID: id, Manifest: m, Signed: signed}
		r.Root = r
		return r
	}
	paid, unpaid := root(), root()
	cat := fakeCatalog{paid.ID: paid, unpaid.ID: unpaid}
	keys := fakeKeys{paid.ID: true}
	round := func(id string, model content.ModelID) announce.Round {
		return announce.Round{ID: id, Model: model[:], Coordinator: coord.String(), State: announce.RoundOpen}
	}
	fr := &fakeRounds{
		rounds:    []announce.Round{round("r1", paid.ID), round("r2", unpaid.ID), round("r3", paid.ID), round("r4", paid.ID), round("r5", paid.ID)},
		joinable:  map[string]bool{"r1": true, "r2": true, "r3": true, "r4": false, "r5": true},
		failTrain: map[string]bool{"r5": true},
	}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	s := New(Config{MaxPerHour: 3, Quiet: Window{From: 22 * 60, To: 6 * 60}, Now: func() time.Time { return now }}, fr, cat, keys)

	if got := s.Once(t.Context()); !slices.Equal(got, []string{"r1", "r3"}) {
		t.Fatalf("joined %v, want r1 and r3 (r2's lineage is unpaid, r4 is not joinable, r5's training fails)", got)
	}
	if !slices.Equal(fr.trained, []string{"r1", "r3", "r5"}) || !slices.Equal(fr.submitted, []string{"r1", "r3"}) {
		t.Fatalf("trained %v, submitted %v", fr.trained, fr.submitted)
	}
	// Nothing is joined twice, and a failed round is not retried.
	fr.rounds = append(fr.rounds, round("r6", paid.ID))
	fr.joinable["r6"] = true
	if got := s.Once(t.Context()); len(got) != 0 {
		t.Fatalf("joined %v with the hourly cap of 3 reached (r1, r3, r5), want none", got)
	}
	now = now.Add(61 * time.Minute)
	if got := s.Once(t.Context()); !slices.Equal(got, []string{"r6"}) {
		t.Fatalf("an hour later joined %v, want r6 only", got)
	}
	// Quiet hours: nothing.
	fr.rounds = append(fr.rounds, round("r7", paid.ID))
	fr.joinable["r7"] = true
	now = time.Date(2026, 12, 2, 23, 30, 0, 0, time.UTC)
	if got := s.Once(t.Context()); len(got) != 0 {
		t.Fatalf("joined %v during quiet hours, want none", got)
	}
}

func TestWindowContains(t *testing.T) {
	w := Window{From: 22 * 60, To: 6*60 + 30}
	for _, c := range []struct {
		at   string
		want bool
	}{{"23:00", true}, {"03:00", true}, {"06:29", true}, {"06:30", false}, {"12:00", false}, {"22:00", true}} {
		at, _ := time.Parse("15:04", c.at)
		if got := w.Contains(at); got != c.want {
			t.Errorf("Contains(%s) = %v, want %v", c.at, got, c.want)
		}
	}
	if (Window{}).Contains(time.Now()) {
		t.Error("the zero window contains a time")
	}
}

// A round whose training fails for a cause that may pass (the base not fetched yet, the
// coordinator out of reach) is tried again after a growing wait, a few times at most, and those
// tries do not count against the hourly cap.
func TestAutoTrainRetriesTransientFailures(t *testing.T) {
	rec, coord := lineageRoot(t)
	id := rec.ID
	round := func(rid string) announce.Round {
		return announce.Round{ID: rid, Model: id[:], Coordinator: coord.String(), State: announce.RoundOpen}
	}
	fr := &fakeRounds{rounds: []announce.Round{round("soon"), round("never")}, joinable: map[string]bool{"soon": true, "never": true},
		busy: map[string]int{"soon": 2, "never": 100}}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	s := New(Config{MaxPerHour: 2, Now: func() time.Time { return now }}, fr, fakeCatalog{id: rec}, fakeKeys{id: true})
	var joined []string
	for range 20 {
		joined = append(joined, s.Once(t.Context())...)
		now = now.Add(5 * time.Second)
	}
	if !slices.Equal(joined, []string{"soon"}) {
		t.Fatalf("joined %v, want the round whose base became available", joined)
	}
	tries := map[string]int{}
	for _, r := range fr.trained {
		tries[r]++
	}
	if tries["soon"] != 3 || tries["never"] != maxTries {
		t.Fatalf("tries = %v, want soon 3 (two unavailable, then joined) and never %d (then given up)", tries, maxTries)
	}
}

// lineageRoot is a lineage's first version that names one coordinator.
func lineageRoot(t *testing.T) (*catalog.Record, peer.ID) {
	t.Helper()
	coord := contenttest.NewSigner(t).ID
	signed, id := contenttest.NewSigner(t).Sign(t, contenttest.Version{Coords: []peer.ID{coord}})
	m, _, err := content.Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	rec := &catalog.Record{ID: id, Manifest: m, Signed: signed}
	rec.Root = rec
	return rec, coord
}
