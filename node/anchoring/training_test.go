package anchoring_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/anchoring"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/protocols/calimero/calimerotest"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// world is a lineage, its coordinators and who paid: the node's catalog and keys as the
// anchoring service sees them through its dependency interfaces.
type world struct {
	mu       sync.Mutex
	lineages map[[32]byte][32]byte // model → lineage
	coords   map[[32]byte]map[peer.ID]bool
	paid     map[[32]byte]map[peer.ID]bool
}

func newWorld() *world {
	return &world{lineages: map[[32]byte][32]byte{}, coords: map[[32]byte]map[peer.ID]bool{}, paid: map[[32]byte]map[peer.ID]bool{}}
}

func (w *world) LineageOf(model [32]byte) ([32]byte, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	l, ok := w.lineages[model]
	return l, ok
}

func (w *world) Authorises(lineage [32]byte, p peer.ID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.coords[lineage][p]
}

func (w *world) MayJoin(lineage [32]byte, p peer.ID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.paid[lineage][p] || w.coords[lineage][p]
}

// direct is an Inviter that hands the request to the coordinator's service in-process, as the
// kex session would, with the asker's peer ID.
type direct struct {
	from  peer.ID
	coord map[peer.ID]*anchoring.Service
}

func (d direct) RequestInvite(ctx context.Context, coordinator peer.ID, lineage [32]byte) (*calimero.InviteReply, error) {
	svc := d.coord[coordinator]
	if svc == nil {
		return nil, errors.New("no such coordinator")
	}
	rep := svc.AnswerInvite(ctx, d.from, &calimero.InviteRequest{Lineage: lineage[:]})
	if rep.Code != 0 {
		return nil, &apierr.Error{Code: rep.Code, Message: rep.Message}
	}
	return rep, rep.Check()
}

type fixture struct {
	sim     *calimerotest.Sim
	catalog string
	w       *world
	coords  map[peer.ID]*anchoring.Service
	lineage [32]byte
	model   [32]byte // a version of the lineage
}

func newFixture(t *testing.T, nodes int, delay time.Duration) *fixture {
	t.Helper()
	sim, err := calimerotest.New(calimerotest.Options{Nodes: nodes, ReplicationDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	f := &fixture{sim: sim, catalog: sim.CreateContext(), w: newWorld(), coords: map[peer.ID]*anchoring.Service{}}
	rand.Read(f.lineage[:])
	rand.Read(f.model[:])
	f.w.lineages[f.lineage] = f.lineage
	f.w.lineages[f.model] = f.lineage
	f.w.coords[f.lineage] = map[peer.ID]bool{}
	f.w.paid[f.lineage] = map[peer.ID]bool{}
	return f
}

func key(t *testing.T) (crypto.PrivKey, peer.ID) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return k, id
}

// service starts a node's anchoring service on emulated merod node i; a coordinator is named by
// the lineage and answers invitations.
func (f *fixture) service(t *testing.T, i int, coordinator bool) (*anchoring.Service, peer.ID, crypto.PrivKey) {
	t.Helper()
	k, id := key(t)
	svc, err := anchoring.New(config.Calimero{Anchoring: "prefer", URL: f.sim.Node(i).URL(), ContextID: f.catalog, InviteInterval: config.Duration{Duration: 10 * time.Second}}, k)
	if err != nil {
		t.Fatal(err)
	}
	if coordinator {
		f.w.coords[f.lineage][id] = true
		f.coords[id] = svc
	}
	svc.EnableTraining(anchoring.TrainingDeps{Members: f.w, Lineages: f.w, Coordinators: f.w, Inviter: direct{from: id, coord: f.coords}})
	return svc, id, k
}

func commitment(kind, round string, model [32]byte) *calimero.Commitment {
	c := &calimero.Commitment{Kind: kind, Round: round, Model: model[:], Hashes: [][]byte{make([]byte, 32)}}
	if kind == calimero.KindRound {
		c.Body = []byte("the round as it opened")
	}
	return c
}

func anchorKeyIn(entries map[string]string, key string) bool { _, ok := entries[key]; return ok }

// TestCommitRouting: a coordinator's round commitments land in the lineage's training context,
// which it creates on the first one (and names in a signed record in the catalog context), the
// round commitment in the catalog context too, while manifests stay in the catalog context; a commitment for a model it does not know falls back
// to the catalog context.
func TestCommitRouting(t *testing.T) {
	f := newFixture(t, 1, 0)
	coord, coordID, _ := f.service(t, 0, true)
	if !coord.TrainingOn() {
		t.Fatal("training contexts are off")
	}
	ctx := t.Context()
	var roundKey string
	for _, kind := range []string{calimero.KindRound, calimero.KindUpdate, calimero.KindMaskedInput, calimero.KindAggregate} {
		k := coord.Commit(ctx, commitment(kind, "r1", f.model))
		if k == "" {
			t.Fatalf("Commit(%s) anchored nothing", kind)
		}
		if kind == calimero.KindRound {
			roundKey = k
		}
	}
	tr, err := coord.Training(ctx, f.lineage)
	if err != nil || !tr.Created || tr.Coordinator != coordID {
		t.Fatalf("Training = %+v, %v; want the context the coordinator created", tr, err)
	}
	cat := f.sim.Node(0).Entries(f.catalog)
	if !anchorKeyIn(cat, calimero.TrainingKey(f.lineage, coordID)) {
		t.Errorf("the catalog context holds no training record of the coordinator: %v", cat)
	}
	trEntries := f.sim.Node(0).Entries(tr.ContextID)
	commits := 0
	for k := range trEntries {
		if strings.HasPrefix(k, calimero.AnchorPrefix) {
			commits++
		}
	}
	if commits != 4 {
		t.Errorf("training context holds %d commitments, want 4", commits)
	}
	// The round commitment (what a failover re-opens the round from) is in the catalog context
	// as well, readable by every coordinator without an invitation; the others are not.
	for k := range cat {
		if strings.HasPrefix(k, calimero.AnchorPrefix) && k != roundKey {
			t.Errorf("a round's update, masked input or aggregate commitment went to the catalog context: %s", k)
		}
	}
	if !anchorKeyIn(cat, roundKey) {
		t.Errorf("the round commitment %s is not in the catalog context too", roundKey)
	}
	// A manifest goes to the catalog context.
	m := anchoredModel(t)
	if err := coord.Put(ctx, m.Signed); err != nil {
		t.Fatal(err)
	}
	if !anchorKeyIn(f.sim.Node(0).Entries(f.catalog), calimero.AnchorKey(m.ID)) || anchorKeyIn(f.sim.Node(0).Entries(tr.ContextID), calimero.AnchorKey(m.ID)) {
		t.Error("the manifest is not in the catalog context alone")
	}
	// An unknown model's commitment: the catalog context.
	var unknown [32]byte
	rand.Read(unknown[:])
	k := coord.Commit(ctx, commitment(calimero.KindUpdate, "r9", unknown))
	if !anchorKeyIn(f.sim.Node(0).Entries(f.catalog), k) {
		t.Errorf("commitment of an unknown model (%s) did not fall back to the catalog context", k)
	}
}

// TestInviteJoinRead: a paying trainer on another merod node asks the coordinator, joins the
// training context on its own node (through the replication delay) and reads the round's
// commitments back from there; a fellow coordinator joins the same context rather than making
// its own.
func TestInviteJoinRead(t *testing.T) {
	f := newFixture(t, 3, 50*time.Millisecond)
	coord, _, _ := f.service(t, 0, true)
	ctx := t.Context()
	round := commitment(calimero.KindRound, "r1", f.model)
	upd := commitment(calimero.KindUpdate, "r1", f.model)
	other := commitment(calimero.KindUpdate, "r2", f.model)
	for _, c := range []*calimero.Commitment{round, upd, other} {
		if coord.Commit(ctx, c) == "" {
			t.Fatal("commit failed")
		}
	}
	tr, err := coord.Training(ctx, f.lineage)
	if err != nil {
		t.Fatal(err)
	}
	// The training record replicates to the other nodes' catalog replicas after the delay.
	trainer, trainerID, _ := f.service(t, 1, false)
	f.w.paid[f.lineage][trainerID] = true
	var joined *anchoring.Training
	waitUntil(t, func() error { joined, err = trainer.Training(ctx, f.lineage); return err })
	if joined.ContextID != tr.ContextID || joined.Executor != f.sim.Node(1).Identity() || joined.Created {
		t.Fatalf("trainer's training context = %+v, want %s with node 1's key", joined, tr.ContextID)
	}
	got, err := trainer.RoundCommitments(ctx, f.lineage, "r1")
	if err != nil || len(got) != 2 || got[0].Kind != calimero.KindRound || got[1].Kind != calimero.KindUpdate {
		t.Fatalf("RoundCommitments(r1) on the trainer = %+v, %v; want the round and its update", got, err)
	}
	rounds, err := trainer.LineageRounds(ctx, f.lineage)
	if err != nil || len(rounds) != 1 || rounds[0].Round != "r1" {
		t.Errorf("LineageRounds = %+v, %v", rounds, err)
	}
	if !f.sim.Node(1).Member(tr.ContextID) {
		t.Error("the trainer's merod does not follow the training context")
	}
	// A fellow coordinator joins the existing context.
	fellow, _, _ := f.service(t, 2, true)
	var ft *anchoring.Training
	waitUntil(t, func() error { ft, err = fellow.Training(ctx, f.lineage); return err })
	if ft.ContextID != tr.ContextID || ft.Created {
		t.Errorf("fellow coordinator's training context = %+v, want %s joined", ft, tr.ContextID)
	}
	got, err = fellow.RoundCommitments(ctx, f.lineage, "r2")
	if err != nil || len(got) != 1 || got[0].Round != "r2" {
		t.Errorf("fellow RoundCommitments(r2) = %+v, %v", got, err)
	}
}

// TestInviteRefused: a peer that may not join is refused with not_unlocked before the
// coordinator calls its merod at all (no namespace, context or invite call); a paying peer
// asking too often is limited.
func TestInviteRefused(t *testing.T) {
	f := newFixture(t, 1, 0)
	coord, _, _ := f.service(t, 0, true)
	_, stranger := key(t)
	rep := coord.AnswerInvite(t.Context(), stranger, &calimero.InviteRequest{Lineage: f.lineage[:]})
	if rep.Code != apierr.NotUnlocked || rep.Message == "" || rep.Invitation != nil {
		t.Errorf("invite of an unpaid peer = %+v, want not_unlocked", rep)
	}
	for _, p := range []string{"POST /admin-api/namespaces", "POST /admin-api/contexts", "POST /admin-api/namespaces/{id}/invite", "GET /admin-api/contexts/{id}"} {
		if n := f.sim.Node(0).Calls(p); n != 0 {
			t.Errorf("the refusal made %d %s calls, want none", n, p)
		}
	}
	if rep := coord.AnswerInvite(t.Context(), stranger, &calimero.InviteRequest{Lineage: []byte{1}}); rep.Code != apierr.InvalidParams {
		t.Errorf("invite with a short lineage = %+v, want invalid_params", rep)
	}
	_, payer := key(t)
	f.w.paid[f.lineage][payer] = true
	for i := 0; i < 3; i++ {
		if rep := coord.AnswerInvite(t.Context(), payer, &calimero.InviteRequest{Lineage: f.lineage[:]}); rep.Code != 0 || rep.Check() != nil {
			t.Fatalf("invite %d of a paying peer = %+v", i, rep)
		}
	}
	if rep := coord.AnswerInvite(t.Context(), payer, &calimero.InviteRequest{Lineage: f.lineage[:]}); rep.Code != apierr.Unavailable {
		t.Errorf("fourth invite in a row = %+v, want the rate limit", rep)
	}
	if n := f.sim.Node(0).Calls("POST /admin-api/namespaces/{id}/invite"); n != 3 {
		t.Errorf("merod saw %d invite calls, want 3", n)
	}
}

// TestForgedRecordsIgnored: a training record signed by a peer the lineage does not name, and
// round commitments signed by one, or for a model of another lineage, or that are not records at
// all, are ignored by readers.
func TestForgedRecordsIgnored(t *testing.T) {
	f := newFixture(t, 1, 0)
	ctx := t.Context()
	forgerKey, forger := key(t)
	cat := calimero.New(calimero.Config{URL: f.sim.URL(), ContextID: f.catalog})
	// The forger creates a namespace and context of its own and names it for the lineage.
	app, _ := cat.Context(ctx, f.catalog)
	ns, _ := cat.CreateNamespace(ctx, app.ApplicationID, "")
	cc, err := cat.CreateContext(ctx, app.ApplicationID, ns)
	if err != nil {
		t.Fatal(err)
	}
	v, err := calimero.SignTraining(&calimero.TrainingRecord{Lineage: f.lineage[:], ContextID: cc.ContextID, NamespaceID: ns, CreatedAt: 1}, forgerKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Set(ctx, calimero.TrainingKey(f.lineage, forger), v); err != nil {
		t.Fatal(err)
	}
	trainer, trainerID, _ := f.service(t, 0, false)
	f.w.paid[f.lineage][trainerID] = true
	if _, err := trainer.Training(ctx, f.lineage); apierr.CodeOf(err) != apierr.NotFound {
		t.Errorf("Training with only a forged record = %v, want not_found", err)
	}
	coord, coordID, coordKey := f.service(t, 0, true)
	tr, err := coord.Training(ctx, f.lineage)
	if err != nil || !tr.Created || tr.ContextID == cc.ContextID {
		t.Fatalf("coordinator's Training = %+v, %v; want its own context, not the forged one", tr, err)
	}
	good := commitment(calimero.KindUpdate, "r1", f.model)
	coord.Commit(ctx, good)
	// Forged commitments in the training context.
	in := cat.In(tr.ContextID, "")
	bad := calimero.NewAnchors(in)
	byForger := commitment(calimero.KindUpdate, "r1", f.model)
	byForger.CreatedAt = time.Now().UnixMilli()
	rec, _ := calimero.SignCommitment(byForger, forgerKey)
	bad.Put(ctx, rec)
	var otherModel [32]byte
	rand.Read(otherModel[:])
	var otherLineage [32]byte
	rand.Read(otherLineage[:])
	f.w.lineages[otherModel] = otherLineage
	f.w.coords[otherLineage] = map[peer.ID]bool{coordID: true}
	wrong := commitment(calimero.KindUpdate, "r1", otherModel)
	wrong.CreatedAt = time.Now().UnixMilli()
	rec, _ = calimero.SignCommitment(wrong, coordKey)
	bad.Put(ctx, rec)
	in.Set(ctx, calimero.AnchorPrefix+strings.Repeat("00", 32), base64.StdEncoding.EncodeToString([]byte("garbage")))
	got, err := coord.RoundCommitments(ctx, f.lineage, "r1")
	if err != nil || len(got) != 1 || string(got[0].Signer) != string(coordID) {
		t.Errorf("RoundCommitments = %+v, %v; want only the coordinator's own commitment", got, err)
	}
}

// waitUntil polls fn until it succeeds (replicas lag) or 10 s pass.
func waitUntil(t *testing.T, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
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

// unreachable is an Inviter whose coordinators never answer.
type unreachable struct{}

func (unreachable) RequestInvite(context.Context, peer.ID, [32]byte) (*calimero.InviteReply, error) {
	return nil, apierr.Errorf(apierr.Unavailable, "coordinator did not answer")
}

// TestCommitFallsBackWhenNoInvitation: a second coordinator on another merod that cannot get an
// invitation into the lineage's existing training context anchors its commitments in the catalog
// context, and readers still find them there.
func TestCommitFallsBackWhenNoInvitation(t *testing.T) {
	f := newFixture(t, 2, 0)
	first, _, _ := f.service(t, 0, true)
	if _, err := first.Training(t.Context(), f.lineage); err != nil {
		t.Fatal(err)
	}
	k, id := key(t)
	second, err := anchoring.New(config.Calimero{Anchoring: "prefer", URL: f.sim.Node(1).URL(), ContextID: f.catalog}, k)
	if err != nil {
		t.Fatal(err)
	}
	f.w.coords[f.lineage][id] = true
	second.EnableTraining(anchoring.TrainingDeps{Members: f.w, Lineages: f.w, Coordinators: f.w, Inviter: unreachable{}})
	anchor := second.Commit(t.Context(), commitment(calimero.KindRound, "r7", f.model))
	if _, ok := f.sim.Node(1).Entries(f.catalog)[anchor]; anchor == "" || !ok {
		t.Fatalf("commitment %q is not in the catalog context", anchor)
	}
	got, err := first.LineageRounds(t.Context(), f.lineage)
	if err != nil || len(got) != 1 || got[0].Round != "r7" {
		t.Errorf("LineageRounds on the first coordinator = %+v, %v; want r7 from the catalog context", got, err)
	}
}
