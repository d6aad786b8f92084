package campaign

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/store"
)

// fakeRounds ends each round it opens as the test scripts it: accuracy[i] for the i-th round
// opened (a negative one: refused by the evaluation floor, the previous version kept).
type fakeRounds struct {
	mu       sync.Mutex
	accuracy []float64
	opened   []rounds.OpenParams
	rounds   map[string]*announce.Round
	reports  map[string]*store.ReportRecord
	hold     chan struct{}    // nil: rounds end at once; else each ends when it receives
	heard    []announce.Round // rounds of other coordinators this node heard of
}

func (f *fakeRounds) List(*content.ModelID) ([]announce.Round, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([]announce.Round(nil), f.heard...)
	for _, r := range f.rounds {
		out = append(out, *r)
	}
	return out, nil
}

// hear adds rounds of other coordinators (or one this node re-opened) to what the node knows.
func (f *fakeRounds) hear(rs ...announce.Round) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heard = append(f.heard, rs...)
}

func (f *fakeRounds) Open(_ context.Context, p rounds.OpenParams) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.opened)
	if n >= len(f.accuracy) {
		return "", apierr.Errorf(apierr.NotUnlocked, "no more rounds scripted")
	}
	f.opened = append(f.opened, p)
	id := fmt.Sprintf("%032x", n+1)
	r := &announce.Round{ID: id, Model: []byte(p.ModelID), State: announce.RoundOpen, Coordinator: "self", Campaign: p.Campaign}
	f.rounds[id] = r
	acc := f.accuracy[n]
	end := func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if acc < 0 {
			r.State, r.Error = announce.RoundFailed, fmt.Sprintf("the aggregate is not published: its accuracy on train.eval_data is %.4f, below the base version's", -acc)
			return
		}
		r.State = announce.RoundDone
		r.NewModel = []byte(fmt.Sprintf("%032d", n+1))
		f.reports[id] = &store.ReportRecord{RoundID: id, Metrics: map[string]float64{"accuracy": acc, "accepted": 3}}
	}
	if f.hold == nil {
		go end()
	} else {
		go func() { <-f.hold; end() }()
	}
	return id, nil
}

func (f *fakeRounds) Get(id string) (*announce.Round, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rounds[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	c := *r
	return &c, nil
}

func (f *fakeRounds) Report(_ context.Context, id string) (*store.ReportRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.reports[id]; ok {
		return r, nil
	}
	return nil, apierr.Errorf(apierr.NotFound, "no report")
}

func newService(t *testing.T, f *fakeRounds) (*Service, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := New(Config{Poll: 10 * time.Millisecond, Settle: time.Millisecond, Self: "self"}, Deps{Store: st, Rounds: f})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, st
}

func waitState(t *testing.T, s *Service, id, state string) *Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.State == state {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign %s is %s (%s), want %s: %+v", id, rec.State, rec.Why, state, rec.Rounds)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A campaign runs its rounds back to back, each on the version the one before published; a
// round refused by the evaluation floor keeps the previous version and says so.
func TestCampaignRunsItsRounds(t *testing.T) {
	f := &fakeRounds{accuracy: []float64{0.90, 0.93, -0.80, 0.95}, rounds: map[string]*announce.Round{}, reports: map[string]*store.ReportRecord{}}
	s, _ := newService(t, f)
	rec, err := s.Begin(t.Context(), Params{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 3, Deadline: "5m", Rule: "fedavg"}, Rounds: 4})
	if err != nil {
		t.Fatal(err)
	}
	rec = waitState(t, s, rec.ID, Done)
	if len(rec.Rounds) != 4 || rec.Rounds[2].Kept != true || !strings.Contains(rec.Rounds[2].Error, "kept previous version") || rec.Best != 0.95 {
		t.Fatalf("campaign = %+v, want 4 rounds, the third keeping the previous version, best 0.95", rec)
	}
	bases := []string{f.opened[0].ModelID, f.opened[1].ModelID, f.opened[2].ModelID, f.opened[3].ModelID}
	want := []string{"m0", hexOf(1), hexOf(2), hexOf(2)} // the fourth opens on the second's version: the third was kept out
	for i := range want {
		if bases[i] != want[i] {
			t.Errorf("round %d opened on %q, want %q", i+1, bases[i], want[i])
		}
	}
	if rec.Current != hexOf(4) {
		t.Errorf("current = %s, want the last version", rec.Current)
	}
}

func hexOf(n int) string { return fmt.Sprintf("%x", []byte(fmt.Sprintf("%032d", n))) }

// The stopping rules: the target accuracy, and patience without a better version.
func TestCampaignStopsEarly(t *testing.T) {
	f := &fakeRounds{accuracy: []float64{0.90, 0.96, 0.97}, rounds: map[string]*announce.Round{}, reports: map[string]*store.ReportRecord{}}
	s, _ := newService(t, f)
	rec, err := s.Begin(t.Context(), Params{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 1}, Rounds: 10, TargetAccuracy: 0.95})
	if err != nil {
		t.Fatal(err)
	}
	rec = waitState(t, s, rec.ID, Done)
	if len(rec.Rounds) != 2 || !strings.Contains(rec.Why, "target") {
		t.Fatalf("campaign = %d rounds, %q; want 2 rounds and the target reached", len(rec.Rounds), rec.Why)
	}

	f2 := &fakeRounds{accuracy: []float64{0.90, 0.89, 0.88, 0.91}, rounds: map[string]*announce.Round{}, reports: map[string]*store.ReportRecord{}}
	s2, _ := newService(t, f2)
	rec, err = s2.Begin(t.Context(), Params{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 1}, Rounds: 10, Patience: 2})
	if err != nil {
		t.Fatal(err)
	}
	rec = waitState(t, s2, rec.ID, Done)
	if len(rec.Rounds) != 3 || !strings.Contains(rec.Why, "no better version in 2 rounds") {
		t.Fatalf("campaign = %d rounds, %q; want 3 and patience exhausted", len(rec.Rounds), rec.Why)
	}
}

// A campaign survives its coordinator's restart (it resumes the round it waited for), stops on
// request, and is refused up front when its first round cannot open.
func TestCampaignResumesAndStops(t *testing.T) {
	f := &fakeRounds{accuracy: []float64{0.9, 0.91, 0.92}, rounds: map[string]*announce.Round{}, reports: map[string]*store.ReportRecord{}, hold: make(chan struct{})}
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := New(Config{Poll: 10 * time.Millisecond, Settle: time.Millisecond, Self: "self"}, Deps{Store: st, Rounds: f})
	s.Start(t.Context())
	rec, err := s.Begin(t.Context(), Params{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 1}, Rounds: 3})
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // the coordinator stops while round 1 runs
	f.hold <- struct{}{}
	s = New(Config{Poll: 10 * time.Millisecond, Settle: time.Millisecond, Self: "self"}, Deps{Store: st, Rounds: f})
	s.Start(t.Context())
	t.Cleanup(func() { s.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := s.Get(rec.ID)
		if len(got.Rounds) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted campaign never opened its second round: %+v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	got, err := s.Stop(rec.ID)
	if err != nil || got.State != Stopped || len(got.Rounds) != 2 || got.Rounds[0].NewModel == "" {
		t.Fatalf("Stop = %+v, %v; want stopped after the resumed first round and the second opened", got, err)
	}
	close(f.hold)

	bad := &fakeRounds{rounds: map[string]*announce.Round{}, reports: map[string]*store.ReportRecord{}}
	s3, _ := newService(t, bad)
	if _, err := s3.Begin(t.Context(), Params{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 1}, Rounds: 2}); apierr.CodeOf(err) != apierr.NotUnlocked {
		t.Fatalf("Begin with a first round that cannot open = %v, want its refusal", err)
	}
	if list, _ := s3.List(); len(list) != 0 {
		t.Fatalf("a refused campaign was recorded: %+v", list)
	}
	for _, p := range []Params{{Rounds: 0}, {Rounds: 2, TargetAccuracy: 2}, {Rounds: 2, Round: rounds.OpenParams{Deadline: "tomorrow"}}} {
		if _, err := s3.Begin(t.Context(), p); apierr.CodeOf(err) != apierr.InvalidParams {
			t.Errorf("Begin(%+v) = %v, want invalid_params", p, err)
		}
	}
	var _ = errors.New
}
