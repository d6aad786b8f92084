package rounds

import (
	"fmt"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/store"
)

// TestStandingsUpdateID: a round's standing names the update this node submitted to it: the one
// trained for it, or, after a failover, the one trained for the round it re-opens (submitted to
// the new round, it counts for both); an update submitted to a round wins over one only trained
// for it; a trained update never submitted names nothing.
func TestStandingsUpdateID(t *testing.T) {
	n := newNode(t, config.RoleTrainer)
	coord := contenttest.NewSigner(t)
	signed, id := coord.Sign(t, versionFor("m", []byte("x")))
	n.catalog.addSigned(t, signed)
	now := time.Now()
	round := func(i int, reopens string) announce.Round {
		return announce.Round{ID: fmt.Sprintf("%032x", i), Model: id[:], Coordinator: coord.ID.String(), MinUpdates: 1,
			Deadline: now.Add(time.Hour).UnixMilli(), Rule: "fedavg", State: announce.RoundOpen, OpenedAt: now.UnixMilli(), Seq: 1, Reopens: reopens}
	}
	old, plain, trainedOnly := round(1, ""), round(3, ""), round(4, "")
	reopened := round(2, old.ID)
	for key, u := range map[string]trainedUpdate{
		"u-old":     {Round: old.ID, Submitted: true, SubmittedTo: reopened.ID}, // trained for the old round, submitted to its re-opening
		"u-plain":   {Round: plain.ID, Submitted: true},                         // a record from before SubmittedTo
		"u-unsent":  {Round: trainedOnly.ID},                                    // trained, never submitted
		"u-retrain": {Round: reopened.ID},                                       // trained for the new round too, not submitted
	} {
		if err := n.st.Put(store.TrainedKey(key), &u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := n.s.Standings([]announce.Round{old, reopened, plain, trainedOnly}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []Standing{{Submitted: true, UpdateID: "u-old"}, {Submitted: true, UpdateID: "u-old"}, {Submitted: true, UpdateID: "u-plain"}, {Joinable: true}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Standings(old, reopened, plain, trained only) = %v, want %v", got, want)
	}

	// Two updates claim the re-opened round: the one submitted to it wins.
	if err := n.st.Put(store.TrainedKey("u-new"), &trainedUpdate{Round: reopened.ID, Submitted: true, SubmittedTo: reopened.ID}); err != nil {
		t.Fatal(err)
	}
	if err := n.st.Put(store.TrainedKey("u-old"), &trainedUpdate{Round: old.ID, Submitted: true, SubmittedTo: old.ID}); err != nil {
		t.Fatal(err)
	}
	got, err = n.s.Standings([]announce.Round{old, reopened}, now)
	if err != nil || got[0].UpdateID != "u-old" || got[1].UpdateID != "u-new" {
		t.Errorf("Standings(old, reopened) = %v, %v; want u-old for the old round and u-new for the re-opened one", got, err)
	}
}
