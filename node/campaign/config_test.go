package campaign

import (
	"reflect"
	"testing"

	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/store"
)

// TestCampaignPassesConfigToEachRound: a campaign's free-form config is stored with it and
// opens every one of its rounds; a config CheckConfig refuses is refused before any round opens.
func TestCampaignPassesConfigToEachRound(t *testing.T) {
	f := &fakeRounds{accuracy: []float64{0.90, 0.91, 0.92}, rounds: map[string]*announce.Round{}, reports: map[string]*store.ReportRecord{}}
	s, _ := newService(t, f)
	config := map[string]any{"holdout": 0.2, "optimizer": "sgd", "augment": true}
	rec, err := s.Begin(t.Context(), Params{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 1, Config: config}, Rounds: 3})
	if err != nil {
		t.Fatal(err)
	}
	rec = waitState(t, s, rec.ID, Done)
	if !reflect.DeepEqual(rec.Params.Config, config) {
		t.Errorf("stored campaign config = %v, want %v", rec.Params.Config, config)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.opened) != 3 {
		t.Fatalf("%d rounds opened, want 3", len(f.opened))
	}
	for i, p := range f.opened {
		if !reflect.DeepEqual(p.Config, config) {
			t.Errorf("round %d opened with config %v, want %v", i+1, p.Config, config)
		}
	}

	for _, bad := range []map[string]any{{"Bad": 1.0}, {"list": []any{1.0}}} {
		if _, err := s.Begin(t.Context(), Params{Round: rounds.OpenParams{ModelID: "m0", MinUpdates: 1, Config: bad}, Rounds: 2}); apierr.CodeOf(err) != apierr.InvalidParams {
			t.Errorf("Begin(config %v) = %v, want invalid_params", bad, err)
		}
	}
	if len(f.opened) != 3 {
		t.Errorf("a refused config opened a round: %d opened", len(f.opened))
	}
}
