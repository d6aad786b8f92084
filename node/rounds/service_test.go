package rounds

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/store"
)

// restart closes n's service and builds a new one over the same store and fakes, as a daemon
// restart would.
func (n *fakeNode) restart(t *testing.T) {
	t.Helper()
	if err := n.s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := New(n.s.cfg, n.s.deps)
	if err != nil {
		t.Fatal(err)
	}
	n.s = s
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls until fn returns nil or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLifecycle: Close works on a service never started and more than once; Start without a
// network (no pubsub, no kex) works once.
func TestLifecycle(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	if err := n.s.Close(); err != nil {
		t.Errorf("Close() before Start = %v", err)
	}
	if err := n.s.Close(); err != nil {
		t.Errorf("Close() twice = %v", err)
	}
	m := newNode(t, config.RoleCoordinator, config.RoleTrainer)
	if err := m.s.Start(t.Context()); err != nil {
		t.Fatalf("Start() without a network = %v", err)
	}
	if err := m.s.Start(t.Context()); err == nil {
		t.Errorf("Start() twice = nil error")
	}
	if err := m.s.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
}

// TestResume: a coordinator restarted with a round open and one update in it resumes the round
// (the update folded back in from its file), takes the next update and aggregates both.
func TestResume(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	base, model, round := roundOn(t, n, OpenParams{MinUpdates: 2, Deadline: "10m", Rule: "fedavg"})
	if got := n.s.handleSubmit(t.Context(), paidTrainer(t, n, model), newSubmit(round, 10, encode(t, variant(t, base, func(float64) float64 { return 0.2 })))); got.Code != 0 {
		t.Fatalf("first update = %+v", got)
	}
	n.restart(t)
	waitFor(t, 5*time.Second, func() error {
		if n.s.liveRound(round) == nil {
			return fmt.Errorf("round %s not resumed", round)
		}
		return nil
	})
	if got := n.s.handleSubmit(t.Context(), paidTrainer(t, n, model), newSubmit(round, 10, encode(t, variant(t, base, func(float64) float64 { return 0.4 })))); got.Code != 0 {
		t.Fatalf("update after the restart = %+v", got)
	}
	_, agg := closeRound(t, n, round)
	expectAll(t, agg, 0.3, "the mean of the update before and the one after the restart")
}

// TestResumeFailsWithoutBase: a round whose base model cannot be decrypted after a restart fails
// with the reason instead of staying open.
func TestResumeFailsWithoutBase(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	_, model, round := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m", Rule: "fedavg"})
	n.models.mu.Lock()
	delete(n.models.plain, model)
	n.models.mu.Unlock()
	n.restart(t)
	waitFor(t, 5*time.Second, func() error {
		r, err := n.s.Get(round)
		if err != nil || r.State != announce.RoundFailed || !strings.Contains(r.Error, "after a restart") {
			return fmt.Errorf("round = %+v, %v; want failed after the restart", r, err)
		}
		return nil
	})
}

// TestOpenParams: max_samples is defaulted and capped; a model whose key this coordinator does
// not hold is refused as not unlocked.
func TestOpenParams(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	_, _, round := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m"})
	if r, err := n.s.Get(round); err != nil || r.MaxSamples != announce.DefaultMaxSamples || r.Rule != fl.RuleFedAvg {
		t.Errorf("round with no max_samples and no rule = %+v, %v; want max_samples %d and rule fedavg", r, err, announce.DefaultMaxSamples)
	}
	raw, _ := fl.NewLogReg(4, 3).Encode()
	rec := n.publishRoot(t, "base", raw)
	if _, err := n.s.Open(t.Context(), OpenParams{ModelID: modelHex(rec.ID), MinUpdates: 1, Deadline: "10m", MaxSamples: announce.MaxSampleCeiling + 1}); apierr.CodeOf(err) != apierr.InvalidParams || !strings.Contains(err.Error(), "max_samples") {
		t.Errorf("Open(max_samples above the ceiling) = %v, want invalid params about max_samples", err)
	}
	if _, err := n.s.Open(t.Context(), OpenParams{ModelID: "xyz", MinUpdates: 1, Deadline: "10m"}); apierr.CodeOf(err) != apierr.InvalidParams {
		t.Errorf("Open(model xyz) = %v, want invalid params", err)
	}
	missing := strings.Repeat("cd", 32)
	if _, err := n.s.Open(t.Context(), OpenParams{ModelID: missing, MinUpdates: 1, Deadline: "10m"}); err == nil || !strings.Contains(err.Error(), "no peer on the network knows model "+missing) {
		t.Errorf("Open(unknown model) = %v, want the not-found-on-the-network refusal", err)
	}
	n.models.mu.Lock()
	delete(n.models.plain, rec.ID)
	n.models.mu.Unlock()
	if _, err := n.s.Open(t.Context(), OpenParams{ModelID: modelHex(rec.ID), MinUpdates: 1, Deadline: "10m"}); apierr.CodeOf(err) != apierr.NotUnlocked {
		t.Errorf("Open(a model without its key) = %v, want not unlocked", err)
	}
	trainer := newNode(t, config.RoleTrainer)
	_, err := trainer.s.Open(t.Context(), OpenParams{ModelID: modelHex(rec.ID), MinUpdates: 1, Deadline: "10m"})
	if want := "this node is not a coordinator: add \"coordinator\" to node.roles to use this method"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Open on a trainer = %v, want %q", err, want)
	}
}

// TestListAndReport: rounds list oldest first and by model; the report of a round is refused
// until it aggregates, and for a round coordinated elsewhere; the stored report keeps empty lists
// empty (the API answers []).
func TestListAndReport(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	base, model, first := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m"})
	time.Sleep(2 * time.Millisecond) // OpenedAt is in milliseconds
	_, other, second := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m"})
	all, err := n.s.List(nil)
	if err != nil || len(all) != 2 || all[0].ID != first || all[1].ID != second {
		t.Fatalf("List(nil) = %+v, %v; want %s then %s", all, err, first, second)
	}
	if got, err := n.s.List(&other); err != nil || len(got) != 1 || got[0].ID != second {
		t.Errorf("List(%x) = %+v, %v; want only %s", other[:4], got, err, second)
	}
	var none content.ModelID
	if got, err := n.s.List(&none); err != nil || len(got) != 0 {
		t.Errorf("List(unknown model) = %+v, %v; want none", got, err)
	}

	if _, err := n.s.Report(t.Context(), strings.Repeat("0", 32)); apierr.CodeOf(err) != apierr.NotFound {
		t.Errorf("Report(unknown round) = %v, want not found", err)
	}
	if _, err := n.s.Report(t.Context(), first); apierr.CodeOf(err) != apierr.NotFound || !strings.Contains(err.Error(), "is open") {
		t.Errorf("Report(open round) = %v, want not found: it is open", err)
	}
	stranger := contenttest.NewSigner(t)
	foreign := &announce.Round{ID: strings.Repeat("f", 32), Model: model[:], Coordinator: stranger.ID.String(), MinUpdates: 1,
		Deadline: time.Now().Add(time.Hour).UnixMilli(), Rule: "fedavg", State: announce.RoundOpen, OpenedAt: time.Now().UnixMilli(), Seq: 1}
	if err := n.s.remember(foreign); err != nil {
		t.Fatal(err)
	}
	if _, err := n.s.Report(t.Context(), foreign.ID); apierr.CodeOf(err) != apierr.Role {
		t.Errorf("Report(round coordinated elsewhere) = %v, want role", err)
	}
	if _, err := n.s.CloseRound(t.Context(), foreign.ID); apierr.CodeOf(err) != apierr.Role {
		t.Errorf("CloseRound(round coordinated elsewhere) = %v, want role", err)
	}

	if got := n.s.handleSubmit(t.Context(), paidTrainer(t, n, model), newSubmit(first, 10, encode(t, base))); got.Code != 0 {
		t.Fatalf("update = %+v", got)
	}
	newID, _ := closeRound(t, n, first)
	rep, err := n.s.Report(t.Context(), first)
	if err != nil || rep.RoundID != first || rep.NewModel != newID || rep.BaseModel != modelHex(model) || len(rep.Participants) != 1 || rep.Metrics["accepted"] != 1 {
		t.Fatalf("Report(done round) = %+v, %v", rep, err)
	}
	if b, _ := json.Marshal(rep.Anchors); string(b) != "[]" {
		t.Errorf("anchors of a round without anchoring = %s, want []", b)
	}
	if got := n.s.handleSubmit(t.Context(), paidTrainer(t, n, model), newSubmit(first, 10, encode(t, base))); got.Code != apierr.Conflict || !strings.Contains(got.Message, "is done") {
		t.Errorf("update to a done round = %+v, want conflict: it is done", got)
	}
}

// TestTrainClaimsKey: a trainer without the key of a round's model asks the round's coordinator
// for it (Keys.Claim); not entitled, it gets the refusal that says how to pay.
func TestTrainClaimsKey(t *testing.T) {
	n := newNode(t, config.RoleTrainer)
	coord := contenttest.NewSigner(t)
	signed, id := coord.Sign(t, versionFor("m", []byte("x")))
	n.catalog.addSigned(t, signed)
	r := &announce.Round{ID: strings.Repeat("a", 32), Model: id[:], Coordinator: coord.ID.String(), MinUpdates: 1,
		Deadline: time.Now().Add(time.Hour).UnixMilli(), Rule: "fedavg", State: announce.RoundOpen, OpenedAt: time.Now().UnixMilli(), Seq: 1}
	if err := n.s.remember(r); err != nil {
		t.Fatal(err)
	}
	_, err := n.s.Train(t.Context(), TrainParams{RoundID: r.ID, Data: "x"})
	want := "model " + modelHex(id) + " is not unlocked here: pay for it with `califusiond model unlock " + modelHex(id) + "` first"
	if apierr.CodeOf(err) != apierr.NotUnlocked || !strings.Contains(err.Error(), want) {
		t.Errorf("Train without the key = %v, want %q", err, want)
	}
	n.keys.mu.Lock()
	claims := n.keys.claims
	n.keys.mu.Unlock()
	if len(claims) != 1 || len(claims[0]) != 1 || claims[0][0] != coord.ID {
		t.Errorf("Claim asked %v, want the round's coordinator [%s]", claims, coord.ID)
	}
	if _, err := n.s.Submit(t.Context(), r.ID, "nope"); apierr.CodeOf(err) != apierr.NotFound {
		t.Errorf("Submit(unknown update) = %v, want not found", err)
	}
}

// TestResumeSkipsARoundReopenedElsewhere: a coordinator back after going silent does not resume
// a round another coordinator re-opened meanwhile (it heard the new round before it stopped, or
// on its way back): the round fails here, saying where it runs.
func TestResumeSkipsARoundReopenedElsewhere(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	_, _, round := roundOn(t, n, OpenParams{MinUpdates: 2, Deadline: "10m", Rule: "fedavg"})
	other := contenttest.NewSigner(t)
	r, err := n.s.Get(round)
	if err != nil {
		t.Fatal(err)
	}
	re := *r
	re.ID, re.Coordinator, re.Reopens, re.Seq = "fedcba9876543210fedcba9876543210", other.ID.String(), round, 1
	if err := n.s.deps.Store.Put(store.RoundKey(re.ID), roundRecord(&re)); err != nil {
		t.Fatal(err)
	}
	n.restart(t)
	waitFor(t, 5*time.Second, func() error {
		r, err := n.s.Get(round)
		if err != nil || r.State != announce.RoundFailed || !strings.Contains(r.Error, re.ID) {
			return fmt.Errorf("round = %+v, %v; want failed, naming the round that re-opened it", r, err)
		}
		return nil
	})
	if n.s.liveRound(round) != nil {
		t.Fatal("the re-opened round was resumed here too")
	}
}
