package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// listedRound returns round id as n's round_list shows it.
func listedRound(t *testing.T, n *harness.Node, id string) (adminrpc.RoundInfo, error) {
	rs, err := n.Client().RoundList(t.Context(), "")
	if err != nil {
		return adminrpc.RoundInfo{}, err
	}
	for _, r := range rs {
		if r.RoundID == id {
			return r, nil
		}
	}
	return adminrpc.RoundInfo{}, fmt.Errorf("round %s is not in round_list", id)
}

// TestTrainerSeesItsRounds: on a trainer, `round ls` shows an open round as joinable before it
// submits and as submitted after; once the round is done, `round report` on the trainer that
// submitted is its own verdict (the only participant) and the new model, asked of the
// coordinator; on a trainer that did not submit it is refused.
func TestTrainerSeesItsRounds(t *testing.T) {
	rn := newRoundNet(t, 2, false, nil)
	ctx := t.Context()
	submitter, idle := rn.trainers[0], rn.trainers[1]
	open, err := rn.coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: rn.model, MinUpdates: 1, Deadline: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range rn.trainers {
		waitFor(t, 30*time.Second, func() error {
			r, err := listedRound(t, tr, open.RoundID)
			if err == nil && (!r.Joinable || r.Submitted) {
				err = errf("%s: round = %+v, want joinable and not submitted", tr.Name, r)
			}
			return err
		})
	}
	if out := cli(t, false, "--datadir", submitter.Datadir, "round", "ls"); !strings.Contains(out, "YOU") || !strings.Contains(out, "joinable") {
		t.Errorf("round ls on a trainer before it submits:\n%s\nwant a YOU column saying joinable", out)
	}
	if r, _ := listedRound(t, rn.coord, open.RoundID); r.Joinable || r.Submitted {
		t.Errorf("round on the coordinator (not a trainer) = %+v, want neither joinable nor submitted", r)
	}

	res, err := submitter.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := submitter.Client().UpdateSubmit(ctx, open.RoundID, res.UpdateID)
	if err != nil {
		t.Fatal(err)
	}
	closed, err := rn.coord.Client().RoundClose(ctx, open.RoundID) // waits for the aggregation the update started
	if err != nil {
		t.Fatal(err)
	}
	if r, err := listedRound(t, submitter, open.RoundID); err != nil || !r.Submitted || r.Joinable {
		t.Errorf("round on the trainer after it submitted = %+v, %v; want submitted, not joinable", r, err)
	}
	if out := cli(t, false, "--datadir", submitter.Datadir, "round", "ls"); !strings.Contains(out, "submitted") {
		t.Errorf("round ls on a trainer after it submitted:\n%s\nwant it marked submitted", out)
	}

	var rep adminrpc.RoundReport
	out := cli(t, false, "--datadir", submitter.Datadir, "--json", "round", "report", open.RoundID)
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("round report --json on the trainer: %v\n%s", err, out)
	}
	me := submitter.Info().PeerID
	if len(rep.Participants) != 1 || rep.Participants[0].PeerID != me || !rep.Participants[0].Accepted ||
		rep.Participants[0].SHA256 != res.UpdateID || rep.Participants[0].Samples != res.Samples || rep.Participants[0].Norm != sub.Norm {
		t.Errorf("participants of the trainer's report = %+v, want only its own accepted update %s (%d samples, norm %v)", rep.Participants, res.UpdateID, res.Samples, sub.Norm)
	}
	full, err := rn.coord.Client().RoundReport(ctx, open.RoundID)
	if err != nil {
		t.Fatal(err)
	}
	if rep.NewModel != closed.ModelID || rep.BaseModel != rn.model || rep.AggregateSHA256 != full.AggregateSHA256 || rep.Metrics["accepted"] != 1 || rep.Metrics["accuracy"] != full.Metrics["accuracy"] {
		t.Errorf("trainer's report = %+v, want new model %s, the coordinator's aggregate hash and metrics %v", rep, closed.ModelID, full.Metrics)
	}
	if text := cli(t, false, "--datadir", submitter.Datadir, "round", "report", open.RoundID); !strings.Contains(text, me) || !strings.Contains(text, closed.ModelID) {
		t.Errorf("round report on the trainer:\n%s\nwant its peer ID and the new model", text)
	}

	if _, err := idle.Client().RoundReport(ctx, open.RoundID); adminrpc.CodeOf(err) != adminrpc.CodeRole {
		t.Errorf("round_report on a trainer that did not submit = %v, want the role refusal", err)
	}
	if out := cli(t, true, "--datadir", idle.Datadir, "round", "report", open.RoundID); !strings.Contains(out, "submitted no update") {
		t.Errorf("round report on a trainer that did not submit:\n%s\nwant the refusal", out)
	}
	if r, err := listedRound(t, idle, open.RoundID); err != nil || r.Joinable || r.Submitted {
		t.Errorf("a done round on a trainer that did not submit = %+v, %v; want neither joinable nor submitted", r, err)
	}
}

// checkDevnetAdditions checks what issue 15 added to the devnet's report and devnet.json: every
// plain round lists its participants (named nodes, peer IDs, samples, norms, verdicts, update hashes)
// and the anchors written; every node in devnet.json has its p2p multiaddrs and Calimero URL.
func checkDevnetAdditions(t *testing.T, rep *devnet.Report, f *devnet.File, trainers int) {
	t.Helper()
	if rep.Training != nil {
		for _, r := range rep.Training.Rounds {
			if len(r.AnchorKeys) != r.Anchors {
				t.Errorf("round %d: anchor keys %q (count %d); want every anchor's key", r.Round, r.AnchorKeys, r.Anchors)
			}
			if r.Secure { // no participant's update is seen: the report names contributors instead
				continue
			}
			if len(r.Participants) != trainers || len(r.AnchorKeys) != r.Anchors {
				t.Errorf("round %d: %d participants, anchor keys %q (count %d); want %d participants and every anchor's key", r.Round, len(r.Participants), r.AnchorKeys, r.Anchors, trainers)
			}
			for _, p := range r.Participants {
				if !strings.HasPrefix(p.Node, "trainer") || p.PeerID == "" || p.Samples == 0 || p.Norm <= 0 || p.Verdict != "accepted" || len(p.UpdateSHA256) != 64 {
					t.Errorf("round %d: participant %+v, want a named trainer's accepted update with its samples, norm and hash", r.Round, p)
				}
			}
		}
	}
	for _, n := range f.Nodes {
		if len(n.P2PAddrs) == 0 || !strings.HasSuffix(n.P2PAddrs[0], "/p2p/"+n.PeerID) || !strings.HasPrefix(n.CalimeroURL, "http") {
			t.Errorf("devnet.json node %s: p2p addrs %q, calimero url %q; want full multiaddrs ending in /p2p/%s and a URL", n.Name, n.P2PAddrs, n.CalimeroURL, n.PeerID)
		}
	}
}
