package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/protocols/updates"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// lineageNet is a publisher+coordinator that published a priced, trainable victim model, and
// trainers that paid for it and unlocked it.
type lineageNet struct {
	c        *cluster
	replica  *icptest.Sim
	coord    *harness.Node
	trainers []*harness.Node
	victim   content.ModelID
}

func newLineageNet(t *testing.T, trainers int) *lineageNet {
	t.Helper()
	ln := &lineageNet{c: newCluster(t), replica: startReplica(t)}
	ln.coord = ln.c.NewNodes("coord", 1, "publisher", "coordinator")[0]
	ln.trainers = ln.c.NewNodes("tr", trainers, "trainer")
	useReplica(t, ln.replica.URL(), append([]*harness.Node{ln.coord}, ln.trainers...)...)
	all, err := devnet.LoadDigits()
	if err != nil {
		t.Fatal(err)
	}
	train, _ := all.Split(1, 0.2)
	shards := train.Shards(trainers, 1, 0.5)
	for i, tr := range ln.trainers {
		path := filepath.Join(tr.Datadir, "shard.csv")
		if err := devnet.WriteCSV(path, shards[i]); err != nil {
			t.Fatal(err)
		}
		if err := tr.EditConfig(func(cfg *config.Config) { cfg.Train.Data, cfg.Train.Epochs = path, 1 }); err != nil {
			t.Fatal(err)
		}
	}
	ln.c.start(ln.coord)
	for _, tr := range ln.trainers {
		ln.c.start(tr, "--bootstrap", ln.coord.P2PAddr())
		ln.replica.Mint(principal.MustDecode(tr.Info().ICPPrincipal), 10_000_000)
	}
	// Trainers must know the coordinator (presence) before they unlock through it.
	waitHeard(t, ln.coord, ln.trainers...)
	raw, err := fl.NewLogReg(devnet.DigitsFeatures, devnet.DigitsClasses).Encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "victim.safetensors")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := ln.coord.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "victim", Price: "1000"})
	if err != nil {
		t.Fatal(err)
	}
	ln.victim = modelIDOf(t, res.ModelID)
	for _, tr := range ln.trainers {
		waitFor(t, 30*time.Second, func() error { _, err := tr.Client().ModelGet(t.Context(), res.ModelID); return err })
		job, err := tr.Client().ModelFetch(t.Context(), res.ModelID)
		if err != nil {
			t.Fatal(err)
		}
		waitJob(t, tr, job.JobID, 30*time.Second)
		if _, err := tr.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: res.ModelID}); err != nil {
			t.Fatalf("%s: unlock: %v", tr.Name, err)
		}
	}
	return ln
}

func modelIDOf(t *testing.T, s string) content.ModelID {
	t.Helper()
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != 32 {
		t.Fatalf("model ID %q: %v", s, err)
	}
	return content.ModelID(raw)
}

// forgery describes a manifest the attacker signs with its own key.
type forgery struct {
	parent, lineage *content.ModelID // a claimed place in someone's lineage
	price, payee    string
	coords          []peer.ID
	name            string // default "totally-the-victim"
}

// sign signs a one-chunk manifest for key k as the attacker.
func (a *attacker) sign(f forgery, k content.Key) ([]byte, content.ModelID) {
	a.t.Helper()
	kc := k.Commitment()
	if f.name == "" {
		f.name = "totally-the-victim"
	}
	m := &content.Manifest{Name: f.name, Size: 1, ChunkSize: content.MinChunkSize, Chunks: 1, Root: make([]byte, 32),
		KeyCommitment: kc[:], Salt: make([]byte, content.SaltSize), Price: f.price, Payee: content.Account{Owner: f.payee},
		CreatedAt: time.Now().UnixMilli()}
	rand.Read(m.Root)
	if f.parent != nil {
		m.Parent, m.Lineage = f.parent[:], f.lineage[:]
	}
	for _, c := range f.coords {
		m.Coordinators = append(m.Coordinators, []byte(c))
	}
	signed, id, err := content.Sign(m, a.key)
	if err != nil {
		a.t.Fatal(err)
	}
	return signed, id
}

// keys sends one keys request to p.
func (a *attacker) keys(p peer.ID, purpose string, msg any) (*keys.Result, error) {
	ctx, cancel := context.WithTimeout(a.t.Context(), 30*time.Second)
	defer cancel()
	return keys.Request(ctx, a.h, p, purpose, msg)
}

// payTo transfers amount from the attacker's ledger account to to, with memo.
func (a *attacker) payTo(c *icp.Client, to principal.Principal, amount int64, memo []byte) uint64 {
	a.t.Helper()
	block, err := c.Transfer(a.t.Context(), icp.Account{Owner: to}, big.NewInt(amount), memo, time.Now())
	if err != nil {
		a.t.Fatal(err)
	}
	return block
}

// topic joins a gossipsub topic in the attacker and waits until every target is a topic peer.
func (a *attacker) topic(name string, targets ...*harness.Node) *pubsub.Topic {
	a.t.Helper()
	if a.ps == nil { // one router per host: a second one would fight the first for the streams
		ps, err := pubsub.NewGossipSub(a.t.Context(), a.h)
		if err != nil {
			a.t.Fatal(err)
		}
		a.ps = ps
	}
	top, err := a.ps.Join(name)
	if err != nil {
		a.t.Fatal(err)
	}
	sub, err := top.Subscribe() // a subscriber is grafted into the mesh
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(sub.Cancel)
	waitFor(a.t, 30*time.Second, func() error {
		in := map[peer.ID]bool{}
		for _, p := range top.ListPeers() {
			in[p] = true
		}
		for _, n := range targets {
			if !in[a.peerOf(n)] {
				return errf("%s has not joined the attacker's %s topic yet", n.Name, name)
			}
		}
		return nil
	})
	return top
}

func keysCode(err error) int {
	var refusal *keys.Error
	if errors.As(err, &refusal) {
		return refusal.Code
	}
	return 0
}

// Attack 1: a rogue publisher signs a one-chunk manifest claiming the victim's lineage at price 1
// to itself and escrows it at the coordinator; a rogue trainer pays it 1 unit with the memo bound
// to the victim's lineage, asks for the fake's key and then for the victim's. It must never get
// the victim's key. Then the same with a fake that is honestly its own root.
func TestAdversaryForgedLineageBuysVictimKey(t *testing.T) {
	ln := newLineageNet(t, 1)
	rogue := newAttacker(t, ln.coord) // the rogue publisher
	buyer := newAttacker(t, ln.coord) // the rogue trainer
	coord := rogue.peerOf(ln.coord)
	rogueAccount := rogue.ledger(ln.replica, 0).Principal()
	ledger := buyer.ledger(ln.replica, 1_000_000)
	payer := ledger.Principal().Encode()
	victim := ln.victim
	victimKeyReleased := func(step string) {
		t.Helper()
		res, err := buyer.keys(coord, keys.PurposeUnlock, &keys.Unlock{Model: victim[:]})
		if err == nil {
			t.Fatalf("%s: the coordinator released the victim's key (%d bytes) to the rogue trainer", step, len(res.Key))
		}
		if keysCode(err) != adminrpc.CodeNotUnlocked {
			t.Errorf("%s: unlock of the victim without paying = %v, want code %d", step, err, adminrpc.CodeNotUnlocked)
		}
	}

	fakeKey, _ := content.NewKey()
	fake, fakeID := rogue.sign(forgery{parent: &victim, lineage: &victim, price: "1", payee: rogueAccount.Encode()}, fakeKey)
	_, err := rogue.keys(coord, keys.PurposeEscrow, &keys.Deposit{Manifest: fake, Key: fakeKey[:]})
	if keysCode(err) != adminrpc.CodeIntegrity {
		t.Errorf("deposit of a stranger's version of the victim's lineage = %v, want code %d", err, adminrpc.CodeIntegrity)
	}
	block := buyer.payTo(ledger, rogueAccount, 1, keys.Memo(victim, buyer.h.ID()))
	if _, err := buyer.keys(coord, keys.PurposeUnlock, &keys.Unlock{Model: fakeID[:], Ledger: icptest.LedgerID, Block: block, Payer: payer}); err == nil {
		t.Errorf("unlock of the fake with 1 unit bound to the victim's lineage succeeded")
	}
	victimKeyReleased("forged child")
	if res, err := buyer.keys(coord, keys.PurposeUnlock, &keys.Unlock{Model: victim[:], Ledger: icptest.LedgerID, Block: block, Payer: payer}); err == nil {
		t.Fatalf("the coordinator released the victim's key (%d bytes) for a payment of 1 unit", len(res.Key))
	}

	// A fake that is honestly its own root (naming the coordinator) is accepted; a payment bound
	// to the victim's lineage does not pay for it, and paying for it gives nothing on the
	// victim's lineage.
	ownKey, _ := content.NewKey()
	own, ownID := rogue.sign(forgery{price: "1", payee: rogueAccount.Encode(), coords: []peer.ID{coord}}, ownKey)
	if _, err := rogue.keys(coord, keys.PurposeEscrow, &keys.Deposit{Manifest: own, Key: ownKey[:]}); err != nil {
		t.Fatalf("deposit of the rogue publisher's own lineage root = %v, want success", err)
	}
	block = buyer.payTo(ledger, rogueAccount, 1, keys.Memo(victim, buyer.h.ID()))
	if _, err := buyer.keys(coord, keys.PurposeUnlock, &keys.Unlock{Model: ownID[:], Ledger: icptest.LedgerID, Block: block, Payer: payer}); keysCode(err) != adminrpc.CodePaymentInvalid {
		t.Errorf("unlock of the rogue root with a payment bound to the victim's lineage = %v, want code %d", err, adminrpc.CodePaymentInvalid)
	}
	block = buyer.payTo(ledger, rogueAccount, 1, keys.Memo(ownID, buyer.h.ID()))
	if res, err := buyer.keys(coord, keys.PurposeUnlock, &keys.Unlock{Model: ownID[:], Ledger: icptest.LedgerID, Block: block, Payer: payer}); err != nil || string(res.Key) != string(ownKey[:]) {
		t.Errorf("unlock of the rogue root, paid for = %v; want its key", err)
	}
	victimKeyReleased("rogue root paid for")
}

// Price-0 forks: a sybil that "pays" for the attacker's free fork of the victim's lineage gets
// no right to submit to the victim's rounds.
func TestAdversaryFreeForkGivesNoSubmissionRight(t *testing.T) {
	ln := newLineageNet(t, 1)
	round, err := ln.coord.Client().RoundOpen(t.Context(), adminrpc.RoundOpenParams{ModelID: hex.EncodeToString(ln.victim[:]), MinUpdates: 3, Deadline: "10m", Rule: "fedavg"})
	if err != nil {
		t.Fatal(err)
	}
	forker := newAttacker(t, ln.coord)
	sybil := newAttacker(t, ln.coord)
	coord := forker.peerOf(ln.coord)
	victim := ln.victim
	forkerAccount := forker.ledger(ln.replica, 0).Principal()
	forkerPays := forkerAccount.Encode()
	sybilLedger := sybil.ledger(ln.replica, 1_000_000)
	sybilMe := sybilLedger.Principal().Encode()

	k1, _ := content.NewKey()
	claimed, claimedID := forker.sign(forgery{parent: &victim, lineage: &victim, price: "0", payee: forkerPays}, k1)
	k2, _ := content.NewKey()
	ownRoot, ownRootID := forker.sign(forgery{price: "0", payee: forkerPays, coords: []peer.ID{coord}}, k2)
	for _, f := range []struct {
		name     string
		manifest []byte
		id       content.ModelID
		key      content.Key
	}{{"fork claiming the victim's lineage", claimed, claimedID, k1}, {"fork as its own root", ownRoot, ownRootID, k2}} {
		_, err := forker.keys(coord, keys.PurposeEscrow, &keys.Deposit{Manifest: f.manifest, Key: f.key[:]})
		t.Logf("%s: deposit = %v", f.name, err)
		for _, lineage := range []content.ModelID{victim, f.id} {
			block := sybil.payTo(sybilLedger, forkerAccount, 1, keys.Memo(lineage, sybil.h.ID()))
			_, err := sybil.keys(coord, keys.PurposeUnlock, &keys.Unlock{Model: f.id[:], Ledger: icptest.LedgerID, Block: block, Payer: sybilMe})
			t.Logf("%s: sybil unlock with a payment bound to %x = %v", f.name, lineage[:4], err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	body := []byte("not even a model")
	sum := sha256.Sum256(body)
	_, err = updates.Submit(ctx, sybil.h, coord, round.RoundID, 10, sum[:], uint64(len(body)), bytes.NewReader(body))
	var refusal *updates.Error
	if !errors.As(err, &refusal) || refusal.Code != adminrpc.CodeNotUnlocked {
		t.Errorf("the sybil's submission to the victim's round = %v, want code %d (it never paid for the victim's lineage)", err, adminrpc.CodeNotUnlocked)
	}
}

// Attack 7: the attacker floods key deposits and model announcements; both are refused beyond
// their limits, and an honest publish still reaches a trainer.
func TestAdversarySpamIsCapped(t *testing.T) {
	ln := newLineageNet(t, 1)
	tr := ln.trainers[0]
	a := newAttacker(t, ln.coord, tr)
	coord := a.peerOf(ln.coord)
	me := a.ledger(ln.replica, 0).Principal().Encode()

	const deposits = 30
	accepted, limited := 0, 0
	for range deposits {
		k, _ := content.NewKey()
		m, _ := a.sign(forgery{price: "0", payee: me, coords: []peer.ID{coord}}, k)
		_, err := a.keys(coord, keys.PurposeEscrow, &keys.Deposit{Manifest: m, Key: k[:]})
		switch {
		case err == nil:
			accepted++
		case keysCode(err) == adminrpc.CodeUnavailable:
			limited++
		default:
			t.Errorf("deposit = %v, want success or code %d", err, adminrpc.CodeUnavailable)
		}
	}
	if limited == 0 || accepted >= deposits/2 {
		t.Errorf("%d rapid deposits: %d accepted, %d rate-limited; want most refused", deposits, accepted, limited)
	}

	// Announcements go out in batches, each allowed to settle on the trainer (so that gossipsub's
	// own validation queue never drops any: what is refused is refused by the node).
	const spam, batch = 300, 25
	top := a.topic(announce.ModelsTopic, ln.coord, tr)
	attackerID := a.h.ID().String()
	stored := func() int {
		list, err := tr.Client().ModelList(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range list {
			if m.Publisher == attackerID && m.Name == "spam" {
				n++
			}
		}
		return n
	}
	settled := func() int {
		last, since := -1, time.Now()
		waitFor(t, 60*time.Second, func() error {
			if n := stored(); n != last {
				last, since = n, time.Now()
			}
			if time.Since(since) < time.Second {
				return errf("the trainer's catalog holds %d spammed models and is still changing", last)
			}
			return nil
		})
		return last
	}
	got := 0
	for sent := 0; sent < spam; sent += batch {
		for range batch {
			k, _ := content.NewKey()
			m, _ := a.sign(forgery{price: "0", payee: me, name: "spam"}, k)
			b, err := announce.NewModelAnnounce(m).Encode()
			if err != nil {
				t.Fatal(err)
			}
			if err := top.Publish(t.Context(), b); err != nil {
				t.Fatal(err)
			}
		}
		got = settled()
	}
	if got >= spam/2 {
		t.Errorf("the trainer stored %d of %d spammed announcements; want most refused", got, spam)
	}
	// An honest publish still works.
	path, _ := writeRandom(t, 1<<20)
	res, err := ln.coord.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "honest", Price: "5"})
	if err != nil {
		t.Fatalf("honest publish after the flood = %v", err)
	}
	waitFor(t, 30*time.Second, func() error { _, err := tr.Client().ModelGet(t.Context(), res.ModelID); return err })
	t.Logf("deposits: %d accepted, %d rate-limited; announcements: %d of %d stored by the trainer", accepted, limited, got, spam)
}

// Attack 8: the attacker announces a round for the victim's model on the rounds topic; a trainer
// that paid for the model refuses to train for it, so nothing derived from its data leaves. A
// round for a model nobody knows is not kept at all.
func TestAdversaryRogueRoundRefused(t *testing.T) {
	ln := newLineageNet(t, 1)
	tr := ln.trainers[0]
	a := newAttacker(t, ln.coord, tr)
	top := a.topic(announce.RoundsTopic, tr)
	roundID := func() string {
		var b [16]byte
		rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}
	now := time.Now()
	rogue := announce.Round{ID: roundID(), Model: ln.victim[:], Coordinator: a.h.ID().String(), MinUpdates: 1,
		Deadline: now.Add(10 * time.Minute).UnixMilli(), Rule: "fedavg", State: announce.RoundOpen, OpenedAt: now.UnixMilli()}
	// The marker is a round the trainer keeps: on the attacker's own model, which names the
	// attacker as its coordinator (a round on a model the trainer does not know is ignored, not
	// kept). Once it is on the trainer, the rogue round sent before it has been judged.
	k, _ := content.NewKey()
	own, ownID := a.sign(forgery{price: "0", payee: "aaaaa-aa", name: "attacker-own", coords: []peer.ID{a.h.ID()}}, k)
	models := a.topic(announce.ModelsTopic, tr)
	waitFor(t, 30*time.Second, func() error {
		b, err := announce.NewModelAnnounce(own).Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := models.Publish(t.Context(), b); err != nil {
			return err
		}
		list, err := tr.Client().ModelList(t.Context())
		if err != nil {
			return err
		}
		for _, m := range list {
			if m.ModelID == hex.EncodeToString(ownID[:]) {
				return nil
			}
		}
		return errf("the trainer has not admitted the attacker's own model yet")
	})
	marker := rogue
	marker.ID, marker.Model = roundID(), ownID[:]
	// A round on a model nobody knows: it cannot be checked, so it is neither kept nor relayed
	// (else any peer could fill every node's store with rounds for made-up models).
	var unknown [32]byte
	rand.Read(unknown[:])
	ghost := rogue
	ghost.ID, ghost.Model = roundID(), unknown[:]
	waitFor(t, 30*time.Second, func() error {
		for _, r := range []*announce.Round{&rogue, &ghost, &marker} {
			r.Seq++
			b, err := r.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if err := top.Publish(t.Context(), b); err != nil {
				return err
			}
		}
		list, err := tr.Client().RoundList(t.Context(), "")
		if err != nil {
			return err
		}
		for _, r := range list {
			if r.RoundID == marker.ID {
				return nil
			}
		}
		return errf("the trainer has not received the attacker's rounds yet")
	})
	all, err := tr.Client().RoundList(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if r.RoundID == ghost.ID {
			t.Errorf("the trainer keeps the attacker's round for a model nobody knows: %+v", r)
		}
	}
	if list, _ := tr.Client().RoundList(t.Context(), hex.EncodeToString(ln.victim[:])); len(list) != 0 {
		t.Errorf("the trainer lists the attacker's round for the victim's model: %+v", list)
	}
	res, err := tr.Client().TrainRun(t.Context(), adminrpc.TrainRunParams{RoundID: rogue.ID})
	if err == nil {
		t.Fatalf("train run for the attacker's round of the victim's model = %+v, want a refusal", res)
	}
	if code := adminrpc.CodeOf(err); code != adminrpc.CodeRole && code != adminrpc.CodeNotFound {
		t.Errorf("train run for the attacker's round = %v, want code %d or %d", err, adminrpc.CodeRole, adminrpc.CodeNotFound)
	}
}

// model publish --coordinator names the lineage's coordinators: the key is escrowed only with
// them, a named coordinator may open rounds on it and one that is not named may not.
func TestPublishNamesCoordinators(t *testing.T) {
	c := newCluster(t)
	pub := c.NewNodes("pub", 1, "publisher", "coordinator")[0]
	coords := c.NewNodes("co", 2, "coordinator")
	named, other := coords[0], coords[1]
	c.start(pub)
	for _, n := range coords {
		c.start(n, "--bootstrap", pub.P2PAddr())
	}
	raw, err := fl.NewLogReg(4, 3).Encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "bad", Price: "1", Coordinators: []string{"nonsense"}}); adminrpc.CodeOf(err) != adminrpc.CodeInvalidParams {
		t.Errorf("publish naming a coordinator that is not a peer ID = %v, want code %d", err, adminrpc.CodeInvalidParams)
	}
	out := cli(t, false, "--datadir", pub.Datadir, "--json", "model", "publish", path, "--price", "1", "--coordinator", named.Info().PeerID)
	var res adminrpc.PublishResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("model publish --json printed %q: %v", out, err)
	}
	for _, n := range coords {
		waitFor(t, 30*time.Second, func() error { _, err := n.Client().ModelGet(t.Context(), res.ModelID); return err })
	}
	if got, _ := named.Client().ModelGet(t.Context(), res.ModelID); !got.Unlocked {
		t.Errorf("the named coordinator holds no key for the model")
	}
	if got, _ := other.Client().ModelGet(t.Context(), res.ModelID); got.Unlocked {
		t.Errorf("a coordinator the lineage does not name holds its key")
	}
	open := adminrpc.RoundOpenParams{ModelID: res.ModelID, MinUpdates: 1, Deadline: "10m", Rule: "fedavg"}
	if _, err := other.Client().RoundOpen(t.Context(), open); adminrpc.CodeOf(err) != adminrpc.CodeRole {
		t.Errorf("round_open on a coordinator the lineage does not name = %v, want code %d", err, adminrpc.CodeRole)
	}
	if _, err := named.Client().RoundOpen(t.Context(), open); err != nil {
		t.Errorf("round_open on the named coordinator = %v", err)
	}
}

// A peer that claims the coordinator role in its presence is not a coordinator of a lineage whose
// publisher did not name it: it receives no key deposit and is not written into the manifest.
// Before the fix, a publisher that is not itself a coordinator named every coordinator it had
// heard of and escrowed the key with each.
func TestAdversaryClaimedCoordinatorGetsNoKey(t *testing.T) {
	c := newCluster(t)
	pub := c.NewNodes("pub", 1, "publisher")[0]
	c.start(pub)
	a := newAttacker(t, pub)
	var deposits atomic.Int32
	ks := kex.NewServer(t.Context(), a.h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { ks.Close() })
	keys.NewServer(ks, keys.Handlers{Escrow: func(context.Context, peer.ID, *keys.Deposit) *keys.Result {
		deposits.Add(1)
		return &keys.Result{}
	}})
	top := a.topic(announce.PresenceTopic, pub)
	me := a.h.ID().String()
	waitFor(t, 30*time.Second, func() error {
		p := announce.Presence{Roles: []string{"coordinator"}, Version: "attacker", SentAt: time.Now().UnixMilli()}
		raw, err := p.Encode()
		if err != nil {
			return err
		}
		if err := top.Publish(t.Context(), raw); err != nil {
			return err
		}
		dir, err := pub.Client().NodeDirectory(t.Context())
		if err != nil {
			return err
		}
		for _, e := range dir {
			if e.PeerID == me {
				return nil
			}
		}
		return errf("the publisher has not heard the attacker's presence yet")
	})
	path, _ := writeRandom(t, 64<<10)
	if _, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "unnamed", Price: "10"}); err != nil {
		t.Fatal(err)
	}
	if n := deposits.Load(); n != 0 {
		t.Errorf("the self-proclaimed coordinator received %d key deposits, want 0", n)
	}
}
