package rounds

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
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
	"github.com/califusion/califusion/node/secagg"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
)

// secureNet is a started coordinator and n trainers on a mocknet, with a base model the
// coordinator published and every trainer holds (unlocked) and may train on.
type secureNet struct {
	c        *fakeNode
	trainers []*fakeNode
	hosts    []host.Host // hosts[0] the coordinator's, then the trainers', then spares
	base     *fl.File
	model    content.ModelID
}

var secureTestPort = 4200
var secureTestPortMu sync.Mutex

// newSecureNet builds the network with n trainers and spare extra hosts (for hand-driven
// trainers).
func newSecureNet(t *testing.T, n, spare int) *secureNet {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	secureTestPortMu.Lock()
	port := secureTestPort
	secureTestPort += 1 + n + spare
	secureTestPortMu.Unlock()
	for i := range 1 + n + spare {
		priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mn.AddPeer(priv, ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port+i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	net := &secureNet{hosts: mn.Hosts()}
	// mn.Hosts() is sorted by peer ID: the coordinator is whichever comes first.
	hc := net.hosts[0]
	net.c = newNodeWithKey(t, hc.Peerstore().PrivKey(hc.ID()), config.RoleCoordinator)
	net.c.s.deps.Kex = kex.NewServer(t.Context(), hc, slog.New(slog.DiscardHandler))
	if err := net.c.s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	net.base = fl.NewLogReg(4, 3)
	raw, _ := net.base.Encode()
	net.model = net.c.publishRoot(t, "base", raw).ID
	for i := range n {
		h := net.hosts[1+i]
		tr := newNodeWithKey(t, h.Peerstore().PrivKey(h.ID()), config.RoleTrainer)
		tr.s.deps.Host = h
		tr.directory.coords = []peer.ID{hc.ID()}
		tr.catalog.remote = net.c.catalog
		tr.models.put(net.model, raw)
		net.c.grants.grant(net.model, h.ID())
		net.trainers = append(net.trainers, tr)
	}
	return net
}

// open opens a secure round on the coordinator.
func (n *secureNet) open(t *testing.T, p OpenParams) string {
	t.Helper()
	p.ModelID, p.Secure = modelHex(n.model), true
	if p.Deadline == "" {
		p.Deadline = "10m"
	}
	id, err := n.c.s.Open(t.Context(), p)
	if err != nil {
		t.Fatalf("Open(secure) = %v", err)
	}
	return id
}

// train runs the built-in trainer of trainer i on its own small data set and returns the
// update's ID, the trained model and its sample count.
func (n *secureNet) train(t *testing.T, i int, round string) (string, *fl.File, uint64) {
	t.Helper()
	rows := []string{"0,0,0,1,0", "1,0,0,0,1", "0,1,0,0,2", "0,0,1,0,0", "1,1,0,0,1", "0,0,1,1,2"}
	var b strings.Builder
	for j := 0; j < 3+i; j++ {
		b.WriteString(rows[(i+j)%len(rows)] + "\n")
	}
	data := filepath.Join(t.TempDir(), "data.csv")
	if err := os.WriteFile(data, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := n.trainers[i].s.Train(t.Context(), TrainParams{RoundID: round, Data: data, Hook: "builtin", Epochs: 2 + i})
	if err != nil {
		t.Fatalf("Train(trainer %d) = %v", i, err)
	}
	raw, err := os.ReadFile(filepath.Join(n.trainers[i].dir, UpdatesDir, res.UpdateID+".safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := fl.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return res.UpdateID, f, res.Samples
}

// waitRound waits until the coordinator's round is in state.
func (n *secureNet) waitRound(t *testing.T, round, state string) *announce.Round {
	t.Helper()
	var r *announce.Round
	waitFor(t, 30*time.Second, func() error {
		var err error
		if r, err = n.c.s.Get(round); err != nil || r.State != state {
			return fmt.Errorf("round %s = %+v, %v; want %s", round, r, err, state)
		}
		return nil
	})
	return r
}

// fedAvg is the plain FedAvg of the trained models (the reference a secure round must match).
func fedAvg(t *testing.T, base *fl.File, models []*fl.File, samples []uint64) *fl.File {
	t.Helper()
	a := fl.NewFedAvg(base)
	for i, m := range models {
		if err := a.Add(m, samples[i]); err != nil {
			t.Fatal(err)
		}
	}
	f, err := a.Result()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// recordingAnchoring anchors every commitment (in memory) and remembers it.
type recordingAnchoring struct {
	mu sync.Mutex
	cs []calimero.Commitment
}

func (a *recordingAnchoring) On() bool                     { return true }
func (a *recordingAnchoring) Known(content.ModelID) string { return "" }
func (a *recordingAnchoring) Commit(_ context.Context, c *calimero.Commitment) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cs = append(a.cs, *c)
	return fmt.Sprintf("anchor-%d", len(a.cs))
}

func (a *recordingAnchoring) RoundCommitments(_ context.Context, _ [32]byte, round string) ([]*calimero.Commitment, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*calimero.Commitment
	for i := range a.cs {
		if a.cs[i].Round == round {
			c := a.cs[i]
			out = append(out, &c)
		}
	}
	return out, nil
}

func (a *recordingAnchoring) JoinTraining(context.Context, [32]byte) error { return nil }

func (a *recordingAnchoring) all() []calimero.Commitment {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]calimero.Commitment(nil), a.cs...)
}

// assertClose fails unless got and want agree coordinate by coordinate within bound.
func assertClose(t *testing.T, got, want *fl.File, bound float64) {
	t.Helper()
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("aggregate has %d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	worst := 0.0
	for i := range want.Tensors {
		g, w := &got.Tensors[i], &want.Tensors[i]
		if g.Name != w.Name || g.Elements() != w.Elements() {
			t.Fatalf("tensor %s (%d) vs %s (%d)", g.Name, g.Elements(), w.Name, w.Elements())
		}
		for j := range w.Elements() {
			worst = math.Max(worst, math.Abs(g.At(j)-w.At(j)))
		}
	}
	if worst > bound {
		t.Fatalf("the secure aggregate differs from plain FedAvg by up to %g, more than the bound %g", worst, bound)
	}
	t.Logf("secure aggregate within %g of plain FedAvg (bound %g)", worst, bound)
}

// published returns the new version's plaintext as a model.
func (n *secureNet) published(t *testing.T, r *announce.Round) *fl.File {
	t.Helper()
	plain, err := n.c.models.Plaintext(content.ModelID(r.NewModel))
	if err != nil {
		t.Fatal(err)
	}
	f, err := fl.Parse(plain)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (n *secureNet) report(t *testing.T, round string) *store.ReportRecord {
	t.Helper()
	rep, err := n.c.s.Report(t.Context(), round)
	if err != nil {
		t.Fatalf("Report(%s) = %v", round, err)
	}
	return rep
}

// bound is the tolerance of a secure aggregate against FedAvg: quantisation plus float32
// rounding.
func bound(r *announce.Round) float64 { return secagg.QuantisationBound(*r.SecAgg) + 1e-5 }

// TestSecureRoundMatchesFedAvg: four trainers run a secure round end to end over mocknet; the
// published version equals plain FedAvg of their updates within the quantisation bound, the
// report lists them all as contributors, and each trainer's round_report says it contributed
// to that version.
func TestSecureRoundMatchesFedAvg(t *testing.T) {
	n := newSecureNet(t, 4, 0)
	anchors := &recordingAnchoring{}
	n.c.s.deps.Anchoring = anchors
	round := n.open(t, OpenParams{MinUpdates: 4})
	var models []*fl.File
	var samples []uint64
	for i := range n.trainers {
		id, f, s := n.train(t, i, round)
		models, samples = append(models, f), append(samples, s)
		res, err := n.trainers[i].s.Submit(t.Context(), round, id)
		if err != nil || !res.Secure || !res.Accepted {
			t.Fatalf("Submit(trainer %d) = %+v, %v; want admitted to a secure round", i, res, err)
		}
	}
	r := n.waitRound(t, round, announce.RoundDone)
	assertClose(t, n.published(t, r), fedAvg(t, n.base, models, samples), bound(r))
	rep := n.report(t, round)
	if !rep.Secure || len(rep.Contributors) != 4 || len(rep.Dropouts) != 0 || rep.SecAgg == nil || rep.NewModel == "" {
		t.Errorf("report = %+v; want secure, 4 contributors, no dropouts, params, a new model", rep)
	}
	for i, tr := range n.trainers {
		waitFor(t, 10*time.Second, func() error {
			rep, err := tr.s.Report(t.Context(), round)
			if err != nil || rep.NewModel != modelHex(content.ModelID(r.NewModel)) || rep.Participants[0].Reason != secContributed {
				return fmt.Errorf("trainer %d report = %+v, %v; want contributed to %x", i, rep, err, r.NewModel)
			}
			return nil
		})
	}
	masked := map[string]bool{}
	for _, c := range anchors.all() {
		if c.Kind == calimero.KindMaskedInput && c.Round == round && len(c.Hashes) == 1 && len(c.Hashes[0]) == 32 {
			masked[peer.ID(c.Subject).String()] = true
		}
	}
	for _, tr := range n.trainers {
		if !masked[tr.self.String()] {
			t.Errorf("no masked_input commitment for %s among %+v", tr.self, anchors.all())
		}
	}
	if len(rep.Anchors) != 5 { // four masked inputs and the aggregate
		t.Errorf("report anchors %v; want the 4 masked inputs' and the aggregate's", rep.Anchors)
	}
	if _, err := n.trainers[0].s.Submit(t.Context(), round, "x"); apierr.CodeOf(err) != apierr.NotFound {
		t.Errorf("Submit(unknown update) = %v, want not_found", err)
	}
	// Nothing of any update is on the coordinator's disk; the search finds one where it is.
	if found := updateBytesIn(t, n.c.dir, models); len(found) != 0 {
		t.Errorf("the coordinator's datadir holds bytes of a trainer's update in %v", found)
	}
	if found := updateBytesIn(t, n.trainers[0].dir, models[:1]); len(found) == 0 {
		t.Error("the search for update bytes does not find trainer 0's own update in its datadir")
	}
}

// updateBytesIn returns the files under dir that hold a 32-byte window of a model's tensor data
// (the models here are small: a 4×3 weight matrix is 48 bytes).
func updateBytesIn(t *testing.T, dir string, models []*fl.File) []string {
	t.Helper()
	var windows [][]byte
	for _, m := range models {
		for _, tn := range m.Tensors {
			if len(tn.Data) >= 32 {
				windows = append(windows, tn.Data[len(tn.Data)-32:])
			}
		}
	}
	if len(windows) == 0 {
		t.Fatal("no window to look for")
	}
	var found []string
	filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(path)
		for _, w := range windows {
			if strings.Contains(string(b), string(w)) {
				found = append(found, path)
				break
			}
		}
		return nil
	})
	return found
}

// TestSecureRoundDropout: a trainer that leaves after sending its shares is dropped at once;
// the round completes with the other three (FedAvg of theirs) and the report lists it as the
// dropout, and its round_report shows no contribution.
func TestSecureRoundDropout(t *testing.T) {
	n := newSecureNet(t, 4, 0)
	quitter := n.trainers[0].self
	afterSharesSent = func(self peer.ID) bool { return self == quitter }
	t.Cleanup(func() { afterSharesSent = nil })
	round := n.open(t, OpenParams{MinUpdates: 4})
	var models []*fl.File
	var samples []uint64
	for i := range n.trainers {
		id, f, s := n.train(t, i, round)
		if i > 0 {
			models, samples = append(models, f), append(samples, s)
		}
		if _, err := n.trainers[i].s.Submit(t.Context(), round, id); err != nil {
			t.Fatalf("Submit(trainer %d) = %v", i, err)
		}
	}
	r := n.waitRound(t, round, announce.RoundDone)
	assertClose(t, n.published(t, r), fedAvg(t, n.base, models, samples), bound(r))
	rep := n.report(t, round)
	if len(rep.Contributors) != 3 || len(rep.Dropouts) != 1 || rep.Dropouts[0] != quitter.String() {
		t.Errorf("report contributors %v, dropouts %v; want 3 and %s", rep.Contributors, rep.Dropouts, quitter)
	}
	waitFor(t, 10*time.Second, func() error {
		rep, err := n.trainers[0].s.Report(t.Context(), round)
		if err != nil || rep.Participants[0].Accepted || rep.Participants[0].Reason != secFailed {
			return fmt.Errorf("the quitter's report = %+v, %v; want no contribution", rep, err)
		}
		return nil
	})
}

// TestSecureRoundTooManyDropouts: three of four trainers leave after their shares: the round
// fails (never a wrong aggregate) with a report saying how many survived of how many needed.
func TestSecureRoundTooManyDropouts(t *testing.T) {
	n := newSecureNet(t, 4, 0)
	stay := n.trainers[3].self
	afterSharesSent = func(self peer.ID) bool { return self != stay }
	t.Cleanup(func() { afterSharesSent = nil })
	round := n.open(t, OpenParams{MinUpdates: 4})
	for i := range n.trainers {
		id, _, _ := n.train(t, i, round)
		if _, err := n.trainers[i].s.Submit(t.Context(), round, id); err != nil {
			t.Fatalf("Submit(trainer %d) = %v", i, err)
		}
	}
	r := n.waitRound(t, round, announce.RoundFailed)
	if r.NewModel != nil || len(n.c.publisher.published()) != 0 {
		t.Errorf("a failed secure round published %x", r.NewModel)
	}
	rep := n.report(t, round)
	if !rep.Secure || rep.Error == "" || !strings.Contains(rep.Error, "1 of the 4 members") || len(rep.Contributors) != 0 {
		t.Errorf("report = %+v; want a failure saying 1 of the 4 members survived", rep)
	}
	waitFor(t, 10*time.Second, func() error {
		rep, err := n.trainers[3].s.Report(t.Context(), round)
		if err != nil || rep.Error == "" || rep.Participants[0].Reason != secFailed {
			return fmt.Errorf("the remaining trainer's report = %+v, %v; want the failure", rep, err)
		}
		return nil
	})
}

// TestSecureOpenRefusals: rules and clip modes that need individual updates, and parameters
// that do not hold, are refused at Open with one clear error each.
func TestSecureOpenRefusals(t *testing.T) {
	c := newNode(t, config.RoleCoordinator)
	c.s.cfg.IsCoordinator = true
	raw, _ := fl.NewLogReg(4, 3).Encode()
	model := modelHex(c.publishRoot(t, "base", raw).ID)
	for _, tc := range []struct {
		p    OpenParams
		want string
	}{
		{OpenParams{Rule: "median"}, "rule median needs individual updates the coordinator never sees: use fedavg or a plain round"},
		{OpenParams{Rule: "trimmed_mean"}, "rule trimmed_mean needs individual updates"},
		{OpenParams{ClipNorm: 1, ClipMode: "reject"}, "clip_mode reject needs individual updates"},
		{OpenParams{ClipNorm: 1}, "clip_mode reject needs individual updates"},
		{OpenParams{Threshold: 1}, "threshold"},
		{OpenParams{MinUpdates: 1}, "at least 2 clients"},
	} {
		p := tc.p
		p.ModelID, p.Deadline, p.Secure = model, "10m", true
		if p.MinUpdates == 0 {
			p.MinUpdates = 4
		}
		_, err := c.s.Open(t.Context(), p)
		if apierr.CodeOf(err) != apierr.InvalidParams || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %v; want invalid_params saying %q", tc.p, err, tc.want)
		}
	}
	if _, err := c.s.Open(t.Context(), OpenParams{ModelID: model, MinUpdates: 2, Deadline: "10m", Threshold: 2}); apierr.CodeOf(err) != apierr.InvalidParams {
		t.Errorf("Open(plain with threshold) = %v, want invalid_params", err)
	}
	id, err := c.s.Open(t.Context(), OpenParams{ModelID: model, MinUpdates: 4, Deadline: "10m", Secure: true, ClipNorm: 2, ClipMode: "scale"})
	if err != nil {
		t.Fatalf("Open(secure, clip scale) = %v", err)
	}
	r, _ := c.s.Get(id)
	if !r.Secure || r.SecAgg == nil || r.SecAgg.MaxWeight != announce.DefaultMaxSamples || r.SecAgg.Threshold != secagg.DefaultParams(4).Threshold {
		t.Errorf("the round = %+v; want secure with the defaults for 4 trainers and max weight %d", r, announce.DefaultMaxSamples)
	}
	if _, err := c.s.CloseRound(t.Context(), id); apierr.CodeOf(err) != apierr.Conflict {
		t.Errorf("CloseRound(secure) = %v, want conflict", err)
	}
}

// TestSecureKeepalive: members waiting on a phase survive a wait several times the
// coordinator's session idle timeout, because both sides send keepalives while they wait.
func TestSecureKeepalive(t *testing.T) {
	oldC, oldT := secureKeepalive, trainerKeepalive
	secureKeepalive, trainerKeepalive = 50*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { secureKeepalive, trainerKeepalive = oldC, oldT })
	n := newSecureNet(t, 4, 0)
	n.c.s.Close()
	// A coordinator whose sessions idle out after 300 ms.
	c := newNodeWithKey(t, n.c.key, config.RoleCoordinator)
	c.catalog, c.models, c.grants = n.c.catalog, n.c.models, n.c.grants
	c.s.deps.Catalog, c.s.deps.Models, c.s.deps.Keyring, c.s.deps.Grants = c.catalog, c.models, c.models, c.grants
	c.publisher.n = c
	c.s.deps.Kex = kex.NewServer(t.Context(), n.hosts[0], slog.New(slog.DiscardHandler), kex.WithIdleTimeout(300*time.Millisecond))
	if err := c.s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	n.c = c
	round := n.open(t, OpenParams{MinUpdates: 4})
	for _, tr := range n.trainers {
		r, _ := c.s.Get(round)
		tr.s.remember(r)
	}
	n.submitAll(t, round, 3)
	waitFor(t, 10*time.Second, func() error {
		if r, _ := c.s.Get(round); r.Updates != 3 {
			return fmt.Errorf("%d joined, want 3", r.Updates)
		}
		return nil
	})
	time.Sleep(time.Second) // the wait under test: more than three idle timeouts with nothing to say
	if r, _ := c.s.Get(round); r.Updates != 3 {
		t.Fatalf("after the wait %d members remain of 3: their sessions idled out", r.Updates)
	}
	n.submitAll4th(t, round)
	n.waitRound(t, round, announce.RoundDone)
	if rep := n.report(t, round); len(rep.Contributors) != 4 {
		t.Errorf("contributors %v, want 4", rep.Contributors)
	}
}

// submitAll4th has the fourth trainer train and submit.
func (n *secureNet) submitAll4th(t *testing.T, round string) {
	t.Helper()
	id, _, _ := n.train(t, 3, round)
	if _, err := n.trainers[3].s.Submit(t.Context(), round, id); err != nil {
		t.Fatal(err)
	}
}

// TestSecureRoundFailsOnRestart: a secure round's state is in memory, so a coordinator that
// restarts fails it, with a report that says so; a plain round opened beside it resumes.
func TestSecureRoundFailsOnRestart(t *testing.T) {
	c := newNode(t, config.RoleCoordinator)
	raw, _ := fl.NewLogReg(4, 3).Encode()
	model := modelHex(c.publishRoot(t, "base", raw).ID)
	secure, err := c.s.Open(t.Context(), OpenParams{ModelID: model, MinUpdates: 4, Deadline: "10m", Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := c.s.Open(t.Context(), OpenParams{ModelID: model, MinUpdates: 4, Deadline: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	c.s.Close()
	again, err := New(c.s.cfg, c.s.deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Close() })
	if err := again.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if r, err := again.Get(secure); err != nil || r.State != announce.RoundFailed || !strings.Contains(r.Error, "restarted") {
			return fmt.Errorf("secure round after the restart = %+v, %v; want failed: restarted", r, err)
		}
		return nil
	})
	rep, err := again.Report(t.Context(), secure)
	if err != nil || !rep.Secure || !strings.Contains(rep.Error, "restarted") {
		t.Errorf("report of the secure round = %+v, %v; want one saying the coordinator restarted", rep, err)
	}
	waitFor(t, 10*time.Second, func() error {
		if again.liveRound(plain) == nil {
			return fmt.Errorf("the plain round was not resumed")
		}
		return nil
	})
	if r, _ := again.Get(plain); r.State != announce.RoundOpen {
		t.Errorf("plain round after the restart = %+v; want open", r)
	}
}
