package rounds

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testSubmit is an update as a trainer would submit it, for tests that drive the coordinator in
// process.
type testSubmit struct {
	Round   string
	Samples uint64
	SHA256  []byte
	Update  []byte
}

func newSubmit(round string, samples uint64, update []byte) *testSubmit {
	sum := sha256.Sum256(update)
	return &testSubmit{Round: round, Samples: samples, SHA256: sum[:], Update: update}
}

// handleSubmit runs a submission through the coordinator's steps as updates/submit/2 does:
// decide on the header, spool the body to a file and check its hash, accept, release.
func (s *Service) handleSubmit(ctx context.Context, from peer.ID, sub *testSubmit) *updates.Receipt {
	st := &updates.Statement{Round: sub.Round, Samples: sub.Samples, SHA256: sub.SHA256, Size: uint64(len(sub.Update)), Trainer: from.String(), Coordinator: s.cfg.Self.String()}
	if r := s.decide(ctx, from, st); r != nil {
		return r
	}
	defer s.release(from, st)
	if sum := sha256.Sum256(sub.Update); !bytes.Equal(sum[:], sub.SHA256) {
		return &updates.Receipt{Code: apierr.Integrity, Message: updates.ErrHash.Error()}
	}
	dir := filepath.Join(s.cfg.RoundsDir, incomingDir)
	os.MkdirAll(dir, 0o700)
	f, err := os.CreateTemp(dir, "submit-*.part")
	if err != nil {
		return receipt(apierr.Internal, "%v", err)
	}
	f.Write(sub.Update)
	f.Close()
	defer os.Remove(f.Name())
	return s.accept(ctx, from, &updates.Upload{Statement: st, Header: &updates.Header{}, Path: filepath.Clean(f.Name())})
}

// TestSampleCeiling (issue 12, attack 4): a claim above the round's max_samples is refused
// from the header, before the body is read, and recorded as rejected; one at the ceiling is
// accepted and weighs exactly the ceiling against an honest update.
func TestSampleCeiling(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	base, model, round := roundOn(t, n, OpenParams{MinUpdates: 2, Deadline: "10m", Rule: "fedavg", MaxSamples: 50})
	r, err := n.s.Get(round)
	if err != nil || r.SampleCeiling() != 50 {
		t.Fatalf("round = %+v, %v, want max_samples 50", r, err)
	}
	sybil := paidTrainer(t, n, model)
	st := &updates.Statement{Round: round, Samples: 1 << 40, SHA256: make([]byte, 32), Size: 400 << 20, Trainer: sybil.String(), Coordinator: n.self.String()}
	if got := n.s.decide(t.Context(), sybil, st); got == nil || got.Code != apierr.UpdateRejected || got.Reason != "sample_count" {
		t.Fatalf("decide(2^40 samples) = %+v, want 1007 sample_count before the body", got)
	}
	if got := n.s.handleSubmit(t.Context(), sybil, newSubmit(round, 10, encode(t, base))); got.Code != apierr.Conflict {
		t.Errorf("the refused sybil submits again = %+v, want conflict (its rejection is recorded)", got)
	}
	a, b := paidTrainer(t, n, model), paidTrainer(t, n, model)
	if got := n.s.handleSubmit(t.Context(), a, newSubmit(round, 50, encode(t, variant(t, base, func(float64) float64 { return 1 })))); got.Code != 0 {
		t.Fatalf("update at the ceiling = %+v, want accepted", got)
	}
	if got := n.s.handleSubmit(t.Context(), b, newSubmit(round, 50, encode(t, variant(t, base, func(float64) float64 { return 0 })))); got.Code != 0 {
		t.Fatalf("second update = %+v, want accepted", got)
	}
	_, agg := closeRound(t, n, round)
	expectAll(t, agg, 0.5, "the mean of two updates at the ceiling")
}

// TestEvalFloor: with train.eval_data set, a round whose aggregate scores worse than the base
// version by more than train.eval_tolerance fails and publishes nothing; an honest round on the
// same data publishes its aggregate.
func TestEvalFloor(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	var csv bytes.Buffer
	for i := range 300 { // class c has feature c at 1, the others near 0
		c := i % 3
		x := [4]float64{0.05 * float64(i%7) / 7, 0.05 * float64(i%5) / 5, 0.05 * float64(i%3) / 3, 0.5}
		x[c] = 1
		fmt.Fprintf(&csv, "%g,%g,%g,%g,%d\n", x[0], x[1], x[2], x[3], c)
	}
	evalPath := filepath.Join(t.TempDir(), "eval.csv")
	if err := os.WriteFile(evalPath, csv.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	n.s.cfg.Train.EvalData = evalPath
	d, err := fl.LoadCSV(evalPath, 1)
	if err != nil {
		t.Fatal(err)
	}
	base, model, round := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m", Rule: "fedavg"})
	good, err := fl.Train(base, d, 20, 16, 0.5, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Poison: the trained model with its classes rotated, so it predicts the wrong one.
	poison := variant(t, good, func(v float64) float64 { return v })
	for _, name := range []string{"weight", "bias"} {
		g, p := good.Tensor(name), poison.Tensor(name)
		per := g.Elements() / 3
		for j := 0; j < g.Elements(); j++ {
			p.Set(j, g.At((j+per)%g.Elements()))
		}
	}
	if fl.Accuracy(good, d) < 0.9 || fl.Accuracy(poison, d) > 0.1 {
		t.Fatalf("test setup: accuracy good %v, poison %v", fl.Accuracy(good, d), fl.Accuracy(poison, d))
	}
	if got := n.s.handleSubmit(t.Context(), paidTrainer(t, n, model), newSubmit(round, 10, encode(t, poison))); got.Code != 0 {
		t.Fatalf("poisoned update = %+v, want accepted (it passes every check but the floor)", got)
	}
	_, err = n.s.CloseRound(t.Context(), round)
	if err == nil || !strings.Contains(err.Error(), "eval_tolerance") {
		t.Errorf("closing the poisoned round = %v, want it failed by the evaluation floor", err)
	}
	if r, _ := n.s.Get(round); r == nil || r.State != announce.RoundFailed || r.NewModel != nil {
		t.Errorf("poisoned round = %+v, want failed with no new version", r)
	}
	if children := childrenOf(t, n, model); children != 0 {
		t.Errorf("models derived from the base after the poisoned round = %d, want 0", children)
	}
	// Its report keeps the participants and both scores, and says why nothing was published.
	if rep, err := n.s.Report(t.Context(), round); err != nil || rep.NewModel != "" || rep.Metrics["accuracy"] > 0.1 || rep.Metrics["base_accuracy"] == 0 ||
		rep.Metrics["accepted"] != 1 || len(rep.Participants) != 1 || !strings.Contains(rep.Error, "not published") {
		t.Errorf("the refused round's report = %+v, %v; want both scores, its participant and why", rep, err)
	}

	_, _, honestRound := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m", Rule: "fedavg"})
	m2, _ := n.s.Get(honestRound)
	if got := n.s.handleSubmit(t.Context(), paidTrainer(t, n, content.ModelID(m2.Model)), newSubmit(honestRound, 10, encode(t, good))); got.Code != 0 {
		t.Fatalf("honest update = %+v", got)
	}
	if _, err := n.s.CloseRound(t.Context(), honestRound); err != nil {
		t.Errorf("closing the honest round = %v, want its aggregate published", err)
	}
}

// childrenOf counts the models this node holds whose parent is id.
func childrenOf(t *testing.T, n *fakeNode, id content.ModelID) int {
	t.Helper()
	count := 0
	for _, r := range n.catalog.all() {
		if bytes.Equal(r.Manifest.Parent, id[:]) {
			count++
		}
	}
	return count
}
