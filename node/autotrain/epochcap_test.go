package autotrain

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
)

// cappedRounds refuses, as rounds.Service.Train does, rounds asking for more than cap epochs.
type cappedRounds struct {
	*fakeRounds
	cap     int
	refused *int
}

func (c cappedRounds) Train(ctx context.Context, p rounds.TrainParams) (rounds.TrainResult, error) {
	for _, r := range c.rounds {
		if r.ID == p.RoundID && r.Epochs > c.cap {
			*c.refused++
			return rounds.TrainResult{}, &apierr.Error{Code: apierr.InvalidParams, Message: "round " + r.ID + " asks for too many epochs (train.max_round_epochs)",
				Data: rounds.EpochCap{Round: r.ID, Epochs: r.Epochs, Cap: c.cap}}
		}
	}
	return c.fakeRounds.Train(ctx, p)
}

// TestAutoTrainSkipsRoundsOverTheEpochCap: a round that asks for more epochs than the trainer's
// cap is not joined, is logged with a message naming train.max_round_epochs, is not retried and
// does not use up the hourly cap.
func TestAutoTrainSkipsRoundsOverTheEpochCap(t *testing.T) {
	root, coord := lineageRoot(t)
	id := root.ID
	round := func(rid string, epochs int) announce.Round {
		return announce.Round{ID: rid, Model: id[:], Coordinator: coord.String(), State: announce.RoundOpen, Epochs: epochs}
	}
	fr := &fakeRounds{rounds: []announce.Round{round("greedy", 500), round("fair", 5)}, joinable: map[string]bool{"greedy": true, "fair": true}}
	var logs bytes.Buffer
	refused := 0
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	s := New(Config{MaxPerHour: 1, Now: func() time.Time { return now }, Log: slog.New(slog.NewTextHandler(&logs, nil))},
		cappedRounds{fr, 50, &refused}, fakeCatalog{id: root}, fakeKeys{id: true})
	if got := s.Once(t.Context()); !slices.Equal(got, []string{"fair"}) {
		t.Fatalf("joined %v, want fair only (greedy asks 500 epochs, cap 50; the hourly cap of 1 is left for fair)", got)
	}
	if !strings.Contains(logs.String(), "not joining round") || !strings.Contains(logs.String(), "train.max_round_epochs") {
		t.Errorf("log = %q, want the refusal naming train.max_round_epochs", logs.String())
	}
	fr.joinable["fair"] = false
	now = now.Add(2 * time.Hour)
	if got := s.Once(t.Context()); len(got) != 0 || refused != 1 {
		t.Fatalf("later joined %v with greedy refused %d times, want nothing joined and greedy tried once", got, refused)
	}
	if slices.Contains(fr.submitted, "greedy") {
		t.Errorf("greedy was submitted: %v", fr.submitted)
	}
}
