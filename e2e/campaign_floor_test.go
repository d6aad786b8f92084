package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// TestCampaignKeepsPreviousVersion: in a 3-round campaign the trainers' round-2 updates are
// trained on rotated labels (train_run's data override), so round 2's aggregate scores far
// below its base on the coordinator's eval_data. It is not published: the campaign records "kept
// previous version" with both scores, and round 3 opens on round 1's version, not on the worse
// one, and publishes.
func TestCampaignKeepsPreviousVersion(t *testing.T) {
	rn := newRoundNet(t, 2, false, nil)
	ctx := t.Context()
	rn.evalOnCoordinator(t)
	rotated := make([]string, len(rn.trainers))
	for i, tr := range rn.trainers {
		d := &fl.Dataset{X: rn.shards[i].X, Classes: rn.shards[i].Classes}
		for _, y := range rn.shards[i].Y {
			d.Y = append(d.Y, (y+1)%devnet.DigitsClasses)
		}
		rotated[i] = filepath.Join(tr.Datadir, "rotated.csv")
		if err := devnet.WriteCSV(rotated[i], d); err != nil {
			t.Fatal(err)
		}
	}
	camp, err := rn.coord.Client().CampaignStart(ctx, adminrpc.CampaignStartParams{ModelID: rn.model, Rounds: 3, MinUpdates: 2, Deadline: "3m", Rule: fl.RuleFedAvg, ClipNorm: 50})
	if err != nil {
		t.Fatal(err)
	}
	show := func() adminrpc.Campaign {
		c, err := rn.coord.Client().CampaignShow(ctx, camp.CampaignID)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for n := 1; n <= 3; n++ {
		var round string
		waitFor(t, 2*time.Minute, func() error {
			c := show()
			if len(c.History) < n || c.History[n-1].State != "open" {
				return errf("campaign round %d not open: %+v", n, c.History)
			}
			round = c.History[n-1].RoundID
			return nil
		})
		for i, tr := range rn.trainers {
			p := adminrpc.TrainRunParams{RoundID: round}
			if n == 2 {
				p.Data = rotated[i]
			}
			res, err := tr.Client().TrainRun(ctx, p)
			if err != nil {
				t.Fatalf("round %d: %s: train_run: %v", n, tr.Name, err)
			}
			if _, err := tr.Client().UpdateSubmit(ctx, round, res.UpdateID); err != nil {
				t.Fatalf("round %d: %s: update_submit: %v", n, tr.Name, err)
			}
		}
	}
	var c adminrpc.Campaign
	waitFor(t, 2*time.Minute, func() error {
		if c = show(); c.State == "running" {
			return errf("campaign still running: %+v", c.History)
		}
		return nil
	})
	if c.State != "done" || len(c.History) != 3 {
		t.Fatalf("campaign = %+v, want done after 3 rounds", c)
	}
	first, worse, third := c.History[0], c.History[1], c.History[2]
	if first.State != "done" || first.NewModel == "" {
		t.Fatalf("round 1 = %+v, want published", first)
	}
	if !worse.Kept || worse.NewModel != "" || !strings.Contains(worse.Error, "kept previous version") || worse.Accuracy >= worse.BaseAccuracy-0.02 {
		t.Fatalf("round 2 (rotated labels) = %+v, want kept previous version with its accuracy well below its base's", worse)
	}
	if !strings.Contains(worse.Error, fmt.Sprintf("%.4f", worse.Accuracy)) && !strings.Contains(worse.Error, "accuracy") {
		t.Errorf("round 2's error %q does not give the scores", worse.Error)
	}
	if third.BaseModel != first.NewModel || third.State != "done" || c.Current != third.NewModel {
		t.Fatalf("round 3 = %+v on %s, want it on round 1's version %s and published", third, third.BaseModel, first.NewModel)
	}
	// The lineage has no version from round 2: nobody can fetch what was never published.
	waitFor(t, time.Minute, func() error { _, err := rn.trainers[0].Client().ModelGet(ctx, c.Current); return err })
	list, err := rn.trainers[0].Client().ModelList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Errorf("the trainer knows %d versions, want 3 (the initial model and rounds 1 and 3)", len(list))
	}
}
