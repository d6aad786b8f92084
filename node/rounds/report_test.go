package rounds

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
)

// TestHandleReport: the coordinator answers a trainer's report query with that trainer's verdict
// once the round is done, refuses it before, refuses a peer that did not submit and a round it
// does not run.
func TestHandleReport(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	base, model, round := roundOn(t, n, OpenParams{MinUpdates: 2, Deadline: "10m"})
	a, b, stranger := paidTrainer(t, n, model), paidTrainer(t, n, model), paidTrainer(t, n, model)
	if got := n.s.handleSubmit(t.Context(), a, newSubmit(round, 10, encode(t, base))); got.Code != 0 {
		t.Fatalf("update of a = %+v", got)
	}
	if got := n.s.handleReport(t.Context(), a, &updates.Query{Round: round}); got.Code != apierr.NotFound || !strings.Contains(got.Message, "is open") {
		t.Errorf("handleReport(open round) = %+v, want not found: it is open", got)
	}
	if got := n.s.handleSubmit(t.Context(), b, newSubmit(round, 30, encode(t, variant(t, base, func(v float64) float64 { return v + 0.5 })))); got.Code != 0 {
		t.Fatalf("update of b = %+v", got)
	}
	newID, _ := closeRound(t, n, round)
	got := n.s.handleReport(t.Context(), a, &updates.Query{Round: round})
	if got.Code != 0 || got.Report == nil {
		t.Fatalf("handleReport(a participant) = %+v, want its report", got)
	}
	rep := got.Report
	if v := rep.Verdict; v.Trainer != a.String() || v.Samples != 10 || !v.Accepted || v.Norm != 0 || len(v.SHA256) != 32 {
		t.Errorf("verdict = %+v, want a's: 10 samples, accepted, norm 0", v)
	}
	if modelHex([32]byte(rep.NewModel)) != newID || modelHex([32]byte(rep.BaseModel)) != modelHex(model) || rep.Metrics["accepted"] != 2 || rep.Metrics["samples"] != 40 {
		t.Errorf("report = %+v, want new model %s, base %s, 2 accepted updates of 40 samples", rep, newID, modelHex(model))
	}
	if err := rep.Check(); err != nil {
		t.Errorf("Check(the answer) = %v", err)
	}
	if got := n.s.handleReport(t.Context(), stranger, &updates.Query{Round: round}); got.Code != apierr.Role || got.Report != nil {
		t.Errorf("handleReport(a peer that did not submit) = %+v, want a role refusal and no report", got)
	}
	if got := n.s.handleReport(t.Context(), a, &updates.Query{Round: strings.Repeat("0", 32)}); got.Code != apierr.NotFound {
		t.Errorf("handleReport(unknown round) = %+v, want not found", got)
	}
}

// TestHandleReportBounds: of a stored report, a trainer is told its own update's anchor and the
// anchors that are no other trainer's, and at most MaxReportMetrics metrics.
func TestHandleReportBounds(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	a, b := paidTrainer(t, n, [32]byte{}), paidTrainer(t, n, [32]byte{})
	id := strings.Repeat("e", 32)
	rep := store.ReportRecord{
		RoundID: id, BaseModel: strings.Repeat("11", 32), NewModel: strings.Repeat("22", 32), Rule: "fedavg",
		AggregateSHA256: strings.Repeat("33", 32), Anchors: []string{"anchor/a", "anchor/b", "anchor/manifest", "anchor/aggregate"},
		Metrics: map[string]float64{},
	}
	for i := range 3 * updates.MaxReportMetrics {
		rep.Metrics[fmt.Sprintf("m%03d", i)] = float64(i)
	}
	err := n.st.Update(func(tx *store.Tx) error {
		r := announce.Round{ID: id, Model: make([]byte, 32), Coordinator: n.self.String(), MinUpdates: 1, Rule: "fedavg", State: announce.RoundDone, Seq: 1}
		for _, put := range []struct {
			k store.Key
			v any
		}{
			{store.RoundKey(id), roundRecord(&r)},
			{store.ReportKey(id), &rep},
			{store.UpdateKey(id, a.String()), &updateRecord{Trainer: a.String(), Samples: 5, Accepted: true, SHA256: make([]byte, 32), Anchor: "anchor/a"}},
			{store.UpdateKey(id, b.String()), &updateRecord{Trainer: b.String(), Samples: 7, Reason: "norm", SHA256: make([]byte, 32), Anchor: "anchor/b"}},
		} {
			if err := tx.Put(put.k, put.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := n.s.handleReport(t.Context(), a, &updates.Query{Round: id})
	if got.Report == nil {
		t.Fatalf("handleReport = %+v, want a report", got)
	}
	if want := []string{"anchor/a", "anchor/manifest", "anchor/aggregate"}; fmt.Sprint(got.Report.Anchors) != fmt.Sprint(want) {
		t.Errorf("anchors told to a = %q, want %q (not b's)", got.Report.Anchors, want)
	}
	if len(got.Report.Metrics) != updates.MaxReportMetrics {
		t.Errorf("metrics told = %d, want %d", len(got.Report.Metrics), updates.MaxReportMetrics)
	}
	got = n.s.handleReport(t.Context(), b, &updates.Query{Round: id})
	if v := got.Report.Verdict; v.Trainer != b.String() || v.Accepted || v.Reason != "norm" || v.Samples != 7 {
		t.Errorf("b's verdict = %+v, want its rejection for norm", v)
	}
}

// reportNet is a coordinator and two trainers on a mocknet; the coordinator serves the updates
// protocol.
func reportNet(t *testing.T) (c, tr, other *fakeNode, hosts []host.Host) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	for i := range 3 {
		priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		h, err := mn.AddPeer(priv, ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4200+i)))
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	key := func(h host.Host) crypto.PrivKey { return h.Peerstore().PrivKey(h.ID()) }
	c = newNodeWithKey(t, key(hosts[0]), config.RoleCoordinator)
	c.s.deps.Kex = kex.NewServer(t.Context(), hosts[0], slog.New(slog.DiscardHandler))
	if err := c.s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	tr = newNodeWithKey(t, key(hosts[1]), config.RoleTrainer)
	other = newNodeWithKey(t, key(hosts[2]), config.RoleTrainer)
	for i, n := range []*fakeNode{tr, other} {
		n.s.deps.Host = hosts[i+1]
		n.directory.coords = []peer.ID{hosts[0].ID()}
	}
	return c, tr, other, hosts
}

// TestReportOnTrainer: after a round, a trainer that submitted gets the report from the
// coordinator with its own verdict as the only participant and the new model; a trainer that
// did not submit is refused locally, and one that claims it did is refused by the coordinator.
func TestReportOnTrainer(t *testing.T) {
	c, tr, other, hosts := reportNet(t)
	_, model, round := roundOn(t, c, OpenParams{MinUpdates: 1, Deadline: "10m", Rule: "fedavg"})
	base, err := c.catalog.Get(model)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := c.models.Plaintext(model)
	for _, n := range []*fakeNode{tr, other} {
		n.catalog.addSigned(t, base.Signed)
		n.models.put(model, plain)
	}
	c.grants.grant(model, hosts[1].ID())
	data := filepath.Join(t.TempDir(), "data.csv")
	os.WriteFile(data, []byte("0,0,0,1,0\n1,0,0,0,1\n0,1,0,0,2\n0,0,1,0,0\n"), 0o600)
	res, err := tr.s.Train(t.Context(), TrainParams{RoundID: round, Data: data, Hook: "builtin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.s.Report(t.Context(), round); apierr.CodeOf(err) != apierr.Role {
		t.Errorf("Report before submitting = %v, want role", err)
	}
	sub, err := tr.s.Submit(t.Context(), round, res.UpdateID)
	if err != nil {
		t.Fatal(err)
	}
	var done *announce.Round
	waitFor(t, 10*time.Second, func() error {
		if done, err = c.s.Get(round); err != nil || done.State != announce.RoundDone {
			return fmt.Errorf("coordinator's round = %+v, %v; want done", done, err)
		}
		return nil
	})
	rep, err := tr.s.Report(t.Context(), round)
	if err != nil {
		t.Fatalf("Report on the trainer = %v", err)
	}
	if len(rep.Participants) != 1 || rep.Participants[0].PeerID != hosts[1].ID().String() || rep.Participants[0].SHA256 != res.UpdateID ||
		!rep.Participants[0].Accepted || rep.Participants[0].Norm != sub.Norm || rep.Participants[0].Samples != res.Samples {
		t.Errorf("participants = %+v, want only this trainer's accepted update %s (norm %v, %d samples)", rep.Participants, res.UpdateID, sub.Norm, res.Samples)
	}
	if rep.NewModel != modelHex([32]byte(done.NewModel)) || rep.RoundID != round || rep.Metrics["accepted"] != 1 || rep.Timings == nil || rep.Anchors == nil {
		t.Errorf("report = %+v, want round %s, new model %x, 1 accepted and empty (not null) lists", rep, round, done.NewModel)
	}

	// round_list's standing names the update submitted (Submit records the round it went to).
	if st, err := tr.s.Standings([]announce.Round{*done}, time.Now()); err != nil || st[0].UpdateID != res.UpdateID || !st[0].Submitted {
		t.Errorf("Standings on the trainer = %+v, %v; want update %s submitted", st, err, res.UpdateID)
	}
	other.s.remember(done)
	if _, err := other.s.Report(t.Context(), round); apierr.CodeOf(err) != apierr.Role {
		t.Errorf("Report on a trainer that did not submit = %v, want role", err)
	}
	// One that lies to itself about having submitted still gets nothing from the coordinator.
	if err := other.st.Put(store.TrainedKey(strings.Repeat("ab", 32)), &trainedUpdate{Round: round, Submitted: true, SHA256: make([]byte, 32)}); err != nil {
		t.Fatal(err)
	}
	if rep, err := other.s.Report(t.Context(), round); apierr.CodeOf(err) != apierr.Role {
		t.Errorf("Report asked of the coordinator by a peer that did not submit = %+v, %v; want its role refusal", rep, err)
	}
}

// TestStandings: a round is joinable for a trainer while it is open, before its deadline, run by
// a coordinator its model's lineage authorises, and before this node submitted to it.
func TestStandings(t *testing.T) {
	n := newNode(t, config.RoleTrainer)
	coord, rogue := contenttest.NewSigner(t), contenttest.NewSigner(t)
	signed, id := coord.Sign(t, versionFor("m", []byte("x")))
	n.catalog.addSigned(t, signed)
	now := time.Now()
	round := func(i int, by peer.ID, state string, deadline time.Time) announce.Round {
		return announce.Round{ID: fmt.Sprintf("%032x", i), Model: id[:], Coordinator: by.String(), MinUpdates: 1,
			Deadline: deadline.UnixMilli(), Rule: "fedavg", State: state, OpenedAt: now.UnixMilli(), Seq: 1}
	}
	rs := []announce.Round{
		round(1, coord.ID, announce.RoundOpen, now.Add(time.Hour)),
		round(2, coord.ID, announce.RoundOpen, now.Add(-time.Second)),
		round(3, coord.ID, announce.RoundDone, now.Add(time.Hour)),
		round(4, rogue.ID, announce.RoundOpen, now.Add(time.Hour)),
		round(5, coord.ID, announce.RoundOpen, now.Add(time.Hour)),
		{ID: fmt.Sprintf("%032x", 6), Model: make([]byte, 32), Coordinator: coord.ID.String(), State: announce.RoundOpen, Deadline: now.Add(time.Hour).UnixMilli()},
	}
	if err := n.st.Put(store.TrainedKey("u5"), &trainedUpdate{Round: rs[4].ID, Submitted: true}); err != nil {
		t.Fatal(err)
	}
	if err := n.st.Put(store.TrainedKey("u1"), &trainedUpdate{Round: rs[0].ID}); err != nil { // trained, not submitted
		t.Fatal(err)
	}
	want := []Standing{{Joinable: true}, {}, {}, {}, {Submitted: true, UpdateID: "u5"}, {}}
	got, err := n.s.Standings(rs, now)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Standings on a trainer = %v, %v; want %v", got, err, want)
	}
	c := newNode(t, config.RoleCoordinator)
	c.catalog.addSigned(t, signed)
	if got, _ := c.s.Standings(rs[:1], now); got[0].Joinable {
		t.Errorf("Standings on a node that is not a trainer = %v, want nothing joinable", got)
	}
}

// TestRejectedTrainerHasSubmitted: an update the coordinator judged and rejected counts as this
// trainer's submission (the coordinator takes no other): the round is no longer joinable, and the
// trainer may ask for its report, which the coordinator has not written while the round is open.
func TestRejectedTrainerHasSubmitted(t *testing.T) {
	c, tr, _, hosts := reportNet(t)
	_, model, round := roundOn(t, c, OpenParams{MinUpdates: 1, Deadline: "10m", Rule: "fedavg", ClipNorm: 1e-9})
	base, err := c.catalog.Get(model)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := c.models.Plaintext(model)
	tr.catalog.addSigned(t, base.Signed)
	tr.models.put(model, plain)
	c.grants.grant(model, hosts[1].ID())
	data := filepath.Join(t.TempDir(), "data.csv")
	os.WriteFile(data, []byte("0,0,0,1,0\n1,0,0,0,1\n0,1,0,0,2\n0,0,1,0,0\n"), 0o600)
	res, err := tr.s.Train(t.Context(), TrainParams{RoundID: round, Data: data, Hook: "builtin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.s.Submit(t.Context(), round, res.UpdateID); apierr.CodeOf(err) != apierr.UpdateRejected {
		t.Fatalf("Submit beyond the norm bound = %v, want update_rejected", err)
	}
	r, err := tr.s.Get(round)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tr.s.Standings([]announce.Round{*r}, time.Now()); err != nil || !got[0].Submitted || got[0].Joinable {
		t.Errorf("Standings after a rejected submission = %v, %v; want submitted, not joinable", got, err)
	}
	if _, err := tr.s.Report(t.Context(), round); apierr.CodeOf(err) != apierr.NotFound || !strings.Contains(err.Error(), "is open") {
		t.Errorf("Report of the open round on the rejected trainer = %v, want the coordinator's not found: it is open", err)
	}
}
