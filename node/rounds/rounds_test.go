package rounds

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// roundOn publishes a small logistic-regression model on an in-process coordinator and opens a
// round for it.
func roundOn(t *testing.T, n *fakeNode, p OpenParams) (*fl.File, content.ModelID, string) {
	t.Helper()
	base := fl.NewLogReg(4, 3)
	raw, err := base.Encode()
	if err != nil {
		t.Fatal(err)
	}
	rec := n.publishRoot(t, "base", raw)
	p.ModelID = modelHex(rec.ID)
	id, err := n.s.Open(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	return base, rec.ID, id
}

func modelHex(id content.ModelID) string { return hex.EncodeToString(id[:]) }

// paidTrainer returns a fresh peer ID with a grant for the lineage, as if it had paid.
func paidTrainer(t *testing.T, n *fakeNode, lineage content.ModelID) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPublicKey(pub)
	n.grants.grant(lineage, id)
	return id
}

// variant returns a copy of base with fn applied to every value.
func variant(t *testing.T, base *fl.File, fn func(v float64) float64) *fl.File {
	t.Helper()
	out := &fl.File{Metadata: map[string]string{}}
	for _, bt := range base.Tensors {
		nt := fl.NewTensor(bt.Name, bt.DType, bt.Shape...)
		for j := 0; j < bt.Elements(); j++ {
			nt.Set(j, fn(bt.At(j)))
		}
		out.Tensors = append(out.Tensors, nt)
	}
	return out
}

func encode(t *testing.T, f *fl.File) []byte {
	t.Helper()
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSubmitVerification sends the coordinator every kind of bad update: each gets one clear
// answer with the API code (and rule), nothing is accepted, and the round stays open for the
// honest update that follows.
func TestSubmitVerification(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	base, model, round := roundOn(t, n, OpenParams{MinUpdates: 2, Deadline: "10m", Rule: "fedavg", ClipNorm: 5})
	good := encode(t, variant(t, base, func(float64) float64 { return 0.1 }))
	wrongShape := fl.NewLogReg(5, 3)
	wrongDType := &fl.File{Metadata: map[string]string{}, Tensors: []fl.Tensor{fl.NewTensor("bias", fl.F64, 3), fl.NewTensor("weight", fl.F32, 3, 4)}}
	extra := fl.NewLogReg(4, 3)
	extra.Tensors = append(extra.Tensors, fl.NewTensor("zzz", fl.F32, 1))
	tamper := newSubmit(round, 10, good)
	tamper.Update = append([]byte(nil), good...)
	tamper.Update[len(tamper.Update)-1] ^= 1

	cases := []struct {
		name   string
		submit *testSubmit
		code   int
		reason string
	}{
		{"NaN", newSubmit(round, 10, encode(t, variant(t, base, func(float64) float64 { return math.NaN() }))), apierr.UpdateRejected, "non_finite"},
		{"Inf", newSubmit(round, 10, encode(t, variant(t, base, func(float64) float64 { return math.Inf(1) }))), apierr.UpdateRejected, "non_finite"},
		{"wrong shape", newSubmit(round, 10, encode(t, wrongShape)), apierr.UpdateRejected, "shape"},
		{"wrong dtype", newSubmit(round, 10, encode(t, wrongDType)), apierr.UpdateRejected, "dtype"},
		{"wrong tensor set", newSubmit(round, 10, encode(t, extra)), apierr.UpdateRejected, "tensor_set"},
		{"norm far beyond the bound", newSubmit(round, 10, encode(t, variant(t, base, func(float64) float64 { return 1000 }))), apierr.UpdateRejected, "norm"},
		{"zero samples", newSubmit(round, 0, good), apierr.UpdateRejected, "sample_count"},
		{"absurd samples", newSubmit(round, 1<<50, good), apierr.UpdateRejected, "sample_count"},
		{"not safetensors", newSubmit(round, 10, []byte("garbage")), apierr.UpdateRejected, "format"},
		{"hash mismatch", tamper, apierr.Integrity, ""},
	}
	for _, c := range cases {
		from := paidTrainer(t, n, model)
		got := n.s.handleSubmit(t.Context(), from, c.submit)
		if got.Code != c.code || got.Reason != c.reason || got.Message == "" {
			t.Errorf("%s: receipt = %+v, want code %d reason %q and a message", c.name, got, c.code, c.reason)
		}
	}
	unpaid, _ := peer.Decode("12D3KooWGRUVh3GZ7T4BZ87wD4bCdnUwQ6sWGnyNNr8EqgjzmiNF")
	if got := n.s.handleSubmit(t.Context(), unpaid, newSubmit(round, 10, good)); got.Code != apierr.NotUnlocked {
		t.Errorf("update from a trainer that did not pay: %+v, want not_unlocked", got)
	}
	if got := n.s.handleSubmit(t.Context(), unpaid, newSubmit("00000000000000000000000000000000", 10, good)); got.Code != apierr.NotFound {
		t.Errorf("update for an unknown round: %+v, want not_found", got)
	}
	honest := paidTrainer(t, n, model)
	if got := n.s.handleSubmit(t.Context(), honest, newSubmit(round, 10, good)); got.Code != 0 || got.Norm <= 0 {
		t.Fatalf("honest update: %+v, want accepted with its norm", got)
	}
	if got := n.s.handleSubmit(t.Context(), honest, newSubmit(round, 10, good)); got.Code != apierr.Conflict {
		t.Errorf("duplicate submission: %+v, want conflict", got)
	}
	r, err := n.s.Get(round)
	if err != nil || r.State != announce.RoundOpen || r.Updates != 1 || r.Rejected != len(cases)-1 {
		t.Errorf("round after the bad updates = %+v, %v; want open with 1 accepted and %d rejected", r, err, len(cases)-1)
	}
}

// TestClipScaleAndAggregate: with clip mode "scale" an update beyond the bound is accepted scaled
// down to it; on quorum the round aggregates into a new version of the lineage whose content is
// the weighted mean, and the report says so.
func TestClipScaleAndAggregate(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	base, model, round := roundOn(t, n, OpenParams{MinUpdates: 2, Deadline: "10m", Rule: "fedavg", ClipNorm: 1, ClipMode: "scale"})
	elems := 0
	for _, bt := range base.Tensors {
		elems += bt.Elements()
	}
	a, b := paidTrainer(t, n, model), paidTrainer(t, n, model)
	// a: every value 1 → norm √elems, clipped to 1 → every value 1/√elems.
	got := n.s.handleSubmit(t.Context(), a, newSubmit(round, 30, encode(t, variant(t, base, func(float64) float64 { return 1 }))))
	if got.Code != 0 || !got.Clipped || math.Abs(got.Norm-math.Sqrt(float64(elems))) > 1e-6 {
		t.Fatalf("over-bound update with clip mode scale: %+v, want accepted, clipped, norm √%d", got, elems)
	}
	small := 0.5 / math.Sqrt(float64(elems))
	if got := n.s.handleSubmit(t.Context(), b, newSubmit(round, 10, encode(t, variant(t, base, func(float64) float64 { return small })))); got.Code != 0 || got.Clipped {
		t.Fatalf("in-bound update: %+v", got)
	}
	newID, agg := closeRound(t, n, round)
	var rep store.ReportRecord
	if err := n.st.Get(store.ReportKey(round), &rep); err != nil || rep.NewModel != newID || len(rep.Participants) != 2 || rep.Metrics["samples"] != 40 {
		t.Fatalf("report = %+v, %v", rep, err)
	}
	expectAll(t, agg, (30/math.Sqrt(float64(elems))+10*small)/40, "the weighted mean of the clipped and the small update")
	rec, err := n.catalog.Get(mustModelID(t, newID))
	if err != nil || rec.Lineage() != model {
		t.Errorf("new version's lineage = %v, %v; want %x", rec, err, model[:4])
	}
	if got := n.s.handleSubmit(t.Context(), paidTrainer(t, n, model), newSubmit(round, 10, encode(t, base))); got.Code != apierr.Conflict {
		t.Errorf("submission after aggregation: %+v, want conflict", got)
	}
	if _, err := os.Stat(filepath.Join(n.s.cfg.RoundsDir, round)); !os.IsNotExist(err) {
		t.Errorf("the round's update files were not removed after publishing: %v", err)
	}
	// What the publisher was asked: the base's name, the round in the description, the base as
	// the parent.
	calls := n.publisher.published()
	if len(calls) != 1 || calls[0].Parent != model || calls[0].Name != "base" || !strings.Contains(calls[0].Description, round) {
		t.Errorf("PublishVersion calls = %+v, want one with parent %x, name base and the round in its description", calls, model[:4])
	}
}

// closeRound aggregates a round on its coordinator and returns the new version, decrypted.
func closeRound(t *testing.T, n *fakeNode, round string) (string, *fl.File) {
	t.Helper()
	newID, err := n.s.CloseRound(t.Context(), round)
	if err != nil {
		t.Fatal(err)
	}
	agg, err := n.s.loadBase(mustModelID(t, newID))
	if err != nil {
		t.Fatal(err)
	}
	return newID, agg
}

// expectAll checks that every value of f is want.
func expectAll(t *testing.T, f *fl.File, want float64, what string) {
	t.Helper()
	for _, tt := range f.Tensors {
		for j := 0; j < tt.Elements(); j++ {
			if math.Abs(tt.At(j)-want) > 1e-6 {
				t.Fatalf("aggregate %s[%d] = %v, want %v, %s", tt.Name, j, tt.At(j), want, what)
			}
		}
	}
}

func mustModelID(t *testing.T, s string) content.ModelID {
	t.Helper()
	id, err := parseModelID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestTrainRunHooks: train_run through the exec hook when the hook crashes, hangs past its
// timeout, writes garbage or writes NaN, each one clear error; the round stays open, no decrypted
// model is left on disk, and the built-in trainer then produces an update.
func TestTrainRunHooks(t *testing.T) {
	n := newNode(t, config.RoleCoordinator, config.RoleTrainer)
	base, _, round := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m", Rule: "fedavg"})
	dir := t.TempDir()
	nan := variant(t, base, func(float64) float64 { return math.NaN() })
	nan.Metadata["samples"] = "5"
	nanPath := filepath.Join(dir, "nan.safetensors")
	os.WriteFile(nanPath, encode(t, nan), 0o600)
	data := filepath.Join(dir, "data.csv")
	os.WriteFile(data, []byte("0,0,0,1,0\n1,0,0,0,1\n0,1,0,0,2\n0,0,1,0,0\n"), 0o600)
	n.s.cfg.Train.Timeout.Duration = time.Second
	cases := []struct {
		name    string
		command []string
		code    int
		msg     string
	}{
		{"crashes", []string{"sh", "-c", "echo boom >&2; exit 3"}, apierr.Internal, "training hook failed"},
		{"hangs", []string{"sleep", "30"}, apierr.Internal, "timed out"},
		{"writes garbage", []string{"sh", "-c", "echo garbage > {out}"}, apierr.Internal, "no valid update"},
		{"writes NaN", []string{"cp", nanPath, "{out}"}, apierr.UpdateRejected, "non_finite"},
	}
	for _, c := range cases {
		n.s.cfg.Train.Command = c.command
		_, err := n.s.Train(t.Context(), TrainParams{RoundID: round, Data: data, Hook: "exec"})
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Code != c.code || !strings.Contains(ae.Message, c.msg) {
			t.Errorf("%s: train_run = %v, want code %d mentioning %q", c.name, err, c.code, c.msg)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(n.s.cfg.TrainDir, "*")); len(left) != 0 {
		t.Errorf("hook scratch files left behind: %v", left)
	}
	good := variant(t, base, func(float64) float64 { return 0.25 })
	good.Metadata["samples"] = "3"
	goodPath := filepath.Join(dir, "good.safetensors")
	os.WriteFile(goodPath, encode(t, good), 0o600)
	n.s.cfg.Train.Command = []string{"sh", "-c", "echo epoch 1 loss 0.5; cp " + goodPath + " {out}"}
	ex, err := n.s.Train(t.Context(), TrainParams{RoundID: round, Data: data, Hook: "exec"})
	if err != nil || ex.Samples != 3 {
		t.Fatalf("exec hook train_run = %+v, %v", ex, err)
	}
	if logs, err := os.ReadFile(filepath.Join(n.s.cfg.UpdatesDir, ex.UpdateID+".log")); err != nil || string(logs) != "epoch 1 loss 0.5\n" {
		t.Errorf("the hook's captured output beside its update = %q, %v", logs, err)
	}
	if _, err := n.s.Train(t.Context(), TrainParams{RoundID: round, Hook: "builtin"}); err == nil {
		t.Errorf("train_run without data = nil error")
	}
	res, err := n.s.Train(t.Context(), TrainParams{RoundID: round, Data: data, Hook: "builtin", Epochs: 2})
	if err != nil || res.Samples != 4 || len(res.UpdateID) != 64 {
		t.Fatalf("built-in train_run = %+v, %v", res, err)
	}
	if r, _ := n.s.Get(round); r.State != announce.RoundOpen {
		t.Errorf("round state after failed hooks = %s, want open", r.State)
	}
	if fi, err := os.Stat(filepath.Join(n.s.cfg.UpdatesDir, res.UpdateID+".safetensors")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stored update: %v, %v; want mode 0600", fi, err)
	}
}

// TestMedianRoundResistsPoison: a median round without a norm bound accepts a poisoned update
// scaled ×1000, and the aggregate is the honest middle value, not dragged by it.
func TestMedianRoundResistsPoison(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	base, model, round := roundOn(t, n, OpenParams{MinUpdates: 3, Deadline: "10m", Rule: "median"})
	for _, v := range []float64{0.1, 0.2, 1000} {
		u := encode(t, variant(t, base, func(float64) float64 { return v }))
		if got := n.s.handleSubmit(t.Context(), paidTrainer(t, n, model), newSubmit(round, 10, u)); got.Code != 0 {
			t.Fatalf("update %v: %+v", v, got)
		}
	}
	_, agg := closeRound(t, n, round)
	expectAll(t, agg, 0.2, "the median (the poisoned 1000 ignored)")
}

// TestConcurrentSubmissions: eight trainers submit at once (verification runs outside the round's
// lock) and all are folded in; one trainer racing itself gets exactly one submission through.
func TestConcurrentSubmissions(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	base, model, round := roundOn(t, n, OpenParams{MinUpdates: 9, Deadline: "10m", Rule: "fedavg"})
	u := encode(t, variant(t, base, func(float64) float64 { return 0.5 }))
	codes := make(chan int, 10)
	var wg sync.WaitGroup
	for range 8 {
		from := paidTrainer(t, n, model)
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- n.s.handleSubmit(t.Context(), from, newSubmit(round, 10, u)).Code
		}()
	}
	twice := paidTrainer(t, n, model)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- n.s.handleSubmit(t.Context(), twice, newSubmit(round, 10, u)).Code
		}()
	}
	wg.Wait()
	close(codes)
	accepted, conflicts := 0, 0
	for c := range codes {
		switch c {
		case 0:
			accepted++
		case apierr.Conflict:
			conflicts++
		default:
			t.Errorf("unexpected receipt code %d", c)
		}
	}
	if accepted != 9 || conflicts != 1 {
		t.Fatalf("accepted %d, conflicts %d; want 9 and 1", accepted, conflicts)
	}
	_, agg := closeRound(t, n, round)
	expectAll(t, agg, 0.5, "the mean")
}

// TestRoundParamErrors: each bad round_open, train_run or update_submit gets one clear error with
// its API code.
func TestRoundParamErrors(t *testing.T) {
	n := newNode(t, config.RoleCoordinator, config.RoleTrainer)
	_, model, round := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m", Rule: "fedavg"})
	id := modelHex(model)
	cases := []struct {
		name string
		call func() error
		code int
	}{
		{"unknown rule", func() error {
			_, err := n.s.Open(t.Context(), OpenParams{ModelID: id, MinUpdates: 1, Deadline: "1m", Rule: "mean"})
			return err
		}, apierr.InvalidParams},
		{"min_updates 0", func() error {
			_, err := n.s.Open(t.Context(), OpenParams{ModelID: id, MinUpdates: 0, Deadline: "1m", Rule: "fedavg"})
			return err
		}, apierr.InvalidParams},
		{"deadline in the past", func() error {
			_, err := n.s.Open(t.Context(), OpenParams{ModelID: id, MinUpdates: 1, Deadline: "2020-01-01T00:00:00Z", Rule: "fedavg"})
			return err
		}, apierr.InvalidParams},
		{"bad clip mode", func() error {
			_, err := n.s.Open(t.Context(), OpenParams{ModelID: id, MinUpdates: 1, Deadline: "1m", Rule: "fedavg", ClipMode: "cut"})
			return err
		}, apierr.InvalidParams},
		{"unknown model", func() error {
			_, err := n.s.Open(t.Context(), OpenParams{ModelID: strings.Repeat("ab", 32), MinUpdates: 1, Deadline: "1m", Rule: "fedavg"})
			return err
		}, apierr.NotFound},
		{"unknown round to train", func() error {
			_, err := n.s.Train(t.Context(), TrainParams{RoundID: strings.Repeat("0", 32), Data: "x"})
			return err
		}, apierr.NotFound},
		{"unknown update", func() error {
			_, err := n.s.Submit(t.Context(), round, "nope")
			return err
		}, apierr.NotFound},
		{"close below the minimum", func() error {
			_, err := n.s.CloseRound(t.Context(), round)
			return err
		}, apierr.Conflict},
	}
	for _, c := range cases {
		err := c.call()
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Code != c.code || ae.Message == "" {
			t.Errorf("%s: %v, want code %d with a message", c.name, err, c.code)
		}
	}
	trainerOnly := newNode(t, config.RoleTrainer)
	if _, err := trainerOnly.s.Open(t.Context(), OpenParams{ModelID: id, MinUpdates: 1, Deadline: "1m", Rule: "fedavg"}); apierr.CodeOf(err) != apierr.Role {
		t.Errorf("round_open on a trainer = %v, want role (1009)", err)
	}
	coordOnly := newNode(t, config.RoleCoordinator)
	if _, err := coordOnly.s.Train(t.Context(), TrainParams{RoundID: round}); apierr.CodeOf(err) != apierr.Role {
		t.Errorf("train_run on a coordinator = %v, want role (1009)", err)
	}
}

// TestReannounceDuringAggregation: the periodic re-announcement never holds the service's lock
// while it waits for a round's lock. An aggregation holds its round's lock and then takes the
// service's lock to end the round; the two used to deadlock when the re-announcement tick came
// during an aggregation (the devnet's last round hung so, now and then).
func TestReannounceDuringAggregation(t *testing.T) {
	n := newNode(t, config.RoleCoordinator, config.RoleTrainer)
	_, _, id := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m"})
	lr := n.s.liveRound(id)
	waiting := make(chan struct{})
	beforeRoundLock = func() { close(waiting) }
	t.Cleanup(func() { beforeRoundLock = nil })

	lr.mu.Lock() // as aggregate does
	done := make(chan struct{})
	go func() { n.s.reannounceOnce(); close(done) }()
	<-waiting // the re-announcement is about to wait for the round's lock
	ended := make(chan struct{})
	go func() { n.s.end(lr); close(ended) }() // needs the service's lock, as aggregate does at its end
	select {
	case <-ended:
	case <-time.After(10 * time.Second): // a bound on a deadlock, not a wait for time to pass
		t.Fatal("ending a round while the re-announcement waits for its lock deadlocked")
	}
	lr.mu.Unlock()
	<-done
}
