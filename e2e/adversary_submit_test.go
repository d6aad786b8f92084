package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Issue 12, attacks 2, 3 and 4: hostile submissions and idle sessions against a coordinator.

// attackMiB is the size of each hostile submission (CALIFUSION_ATTACK_MIB overrides it, e.g. to
// run the attack against older code on a small machine).
func attackMiB() int {
	if v, err := strconv.Atoi(os.Getenv("CALIFUSION_ATTACK_MIB")); err == nil && v > 0 {
		return v
	}
	return 400
}

// submitV1 is the update message of updates/submit/1 (before issue 12): the whole update in the
// one message, buffered by the coordinator before it looked at the round or the sender.
type submitV1 struct {
	Round   string `cbor:"1,keyasint"`
	Samples uint64 `cbor:"2,keyasint"`
	SHA256  []byte `cbor:"3,keyasint"`
	Update  []byte `cbor:"4,keyasint"`
}

// push is the outcome of one hostile submission.
type push struct {
	refusal *updates.Error // the coordinator's answer, if it refused
	written int64          // body bytes the attacker had written when the answer came
	err     error          // any other failure (the session was reset, the purpose refused)
}

// submitBlind submits a size-byte body for round claiming samples, the way a hostile trainer
// would: over updates/submit/2 it sends the signed header and streams the body right behind it
// without waiting for the coordinator's answer; a coordinator that only speaks
// updates/submit/1 gets the whole message instead. body, if set, is the update; otherwise the
// body is zeros.
func (a *attacker) submitBlind(ctx context.Context, to peer.ID, round string, samples uint64, size int, body []byte) push {
	if body != nil {
		size = len(body)
	}
	chunk := make([]byte, updates.BodyChunk)
	piece := func(at int) []byte {
		n := min(len(chunk), size-at)
		if body != nil {
			return body[at : at+n]
		}
		return chunk[:n]
	}
	h := sha256.New()
	for at := 0; at < size; at += len(chunk) {
		h.Write(piece(at))
	}
	sum := h.Sum(nil)

	s, err := kex.Dial(ctx, a.h, to, updates.PurposeSubmit)
	if err != nil {
		return a.submitV1(ctx, to, round, samples, size, body, sum)
	}
	defer s.Reset()
	hdr, err := updates.Sign(a.key, &updates.Statement{Round: round, Samples: samples, SHA256: sum, Size: uint64(size), Trainer: a.h.ID().String(), Coordinator: to.String()})
	if err != nil {
		return push{err: err}
	}
	raw, _ := wire.Marshal(hdr)
	if err := s.Send(ctx, raw); err != nil {
		return push{err: err}
	}
	var written atomic.Int64
	sctx, stop := context.WithCancel(ctx)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for at := 0; at < size; at += len(chunk) {
			p := piece(at)
			if s.Send(sctx, p) != nil {
				return
			}
			written.Add(int64(len(p)))
		}
	}()
	var out push
	for {
		msg, err := s.Recv(ctx, updates.MaxReceipt)
		if err != nil {
			out.err = err
			break
		}
		var r updates.Receipt
		if err := wire.Unmarshal(msg, &r); err != nil {
			out.err = err
			break
		}
		if r.Code != 0 {
			out.refusal = &updates.Error{Code: r.Code, Message: r.Message, Reason: r.Reason}
			break
		}
		if !r.Go { // the final receipt of an accepted update
			break
		}
	}
	out.written = written.Load()
	stop()
	s.Reset()
	<-sent
	return out
}

// submitV1 is the same attack over updates/submit/1, for a coordinator that still speaks it.
func (a *attacker) submitV1(ctx context.Context, to peer.ID, round string, samples uint64, size int, body, sum []byte) push {
	s, err := kex.Dial(ctx, a.h, to, "updates/submit/1")
	if err != nil {
		return push{err: fmt.Errorf("neither updates/submit/2 nor /1: %w", err)}
	}
	defer s.Reset()
	if body == nil {
		body = make([]byte, size)
	}
	msg, err := wire.Marshal(&submitV1{Round: round, Samples: samples, SHA256: sum, Update: body})
	if err != nil {
		return push{err: err}
	}
	if err := s.Send(ctx, msg); err != nil {
		return push{err: err, written: int64(len(msg))}
	}
	raw, err := s.Recv(ctx, updates.MaxReceipt)
	if err != nil {
		return push{err: err, written: int64(len(msg))}
	}
	var r updates.Receipt
	wire.Unmarshal(raw, &r)
	out := push{written: int64(len(msg))}
	if r.Code != 0 {
		out.refusal = &updates.Error{Code: r.Code, Message: r.Message, Reason: r.Reason}
	}
	return out
}

// peakRSS samples n's resident memory until stop is closed and returns the highest value.
func peakRSS(t *testing.T, n *harness.Node, stop chan struct{}) func() int64 {
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := n.RSS(); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 { <-done; return peak.Load() }
}

// TestAdversaryUnpaidSubmissions (attack 2): a peer that paid for nothing pushes two 400 MiB
// submissions, one for a round that does not exist and one for a real round it has no grant
// for. Both are refused from their header: the coordinator's peak RSS during the attack stays
// within 100 MiB of its idle RSS, and the refusal arrives while the attacker has written only
// what flow control let through. Fails before issue 12's fix: updates/submit/1 buffered each
// whole message first (RSS +1.5–2.3 GB, the refusal after the upload).
func TestAdversaryUnpaidSubmissions(t *testing.T) {
	rn := newRoundNet(t, 1, false, nil)
	ctx := t.Context()
	open, err := rn.coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: rn.model, MinUpdates: 1, Deadline: "10m", Rule: "fedavg"})
	if err != nil {
		t.Fatal(err)
	}
	a := newAttacker(t, rn.coord)
	coord := a.peerOf(rn.coord)
	size := attackMiB() << 20

	idle, err := rn.coord.RSS()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	peak := peakRSS(t, rn.coord, stop)
	var wg sync.WaitGroup
	results := make([]push, 2)
	for i, round := range []string{"00000000000000000000000000000000", open.RoundID} {
		wg.Go(func() { results[i] = a.submitBlind(ctx, coord, round, 100, size, nil) })
	}
	wg.Wait()
	close(stop)
	grew := peak() - idle
	t.Logf("coordinator RSS idle %d MiB, peak during 2 × %d MiB unpaid submissions +%d MiB", idle>>20, size>>20, grew>>20)
	for i, want := range []int{adminrpc.CodeNotFound, adminrpc.CodeNotUnlocked} {
		r := results[i]
		t.Logf("submission %d: refusal %v after the attacker wrote %d KiB of its %d MiB body (err %v)", i, r.refusal, r.written>>10, size>>20, r.err)
		if r.refusal == nil || r.refusal.Code != want {
			t.Errorf("unpaid submission %d = refusal %v, err %v; want refused with code %d", i, r.refusal, r.err, want)
		}
		if r.written > 64<<20 {
			t.Errorf("unpaid submission %d was refused after %d MiB of body, want it refused from its header", i, r.written>>20)
		}
	}
	if grew > 100<<20 {
		t.Errorf("coordinator RSS grew by %d MiB during the attack, want at most 100 MiB", grew>>20)
	}
	// Nothing was recorded for the refused peer, and the round still takes the honest update.
	tr := rn.trainers[0]
	res, err := tr.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Client().UpdateSubmit(ctx, open.RoundID, res.UpdateID); err != nil {
		t.Errorf("honest update after the attack = %v, want accepted", err)
	}
}

// TestAdversaryIdleSessions (attack 3): ten peer IDs try to hold 70 idle kex sessions each on
// the coordinator while a fresh trainer buys and unlocks a model. The coordinator keeps at
// most kex.MaxSessionsPerPeer of each attacker's sessions, and the trainer's pay, unlock and
// export go through. Fails before issue 12's fix: every idle session was kept forever.
func TestAdversaryIdleSessions(t *testing.T) {
	replica := startReplica(t)
	c := newCluster(t)
	pub := c.NewNodes("pub", 1, "publisher")[0]
	coord := c.NewNodes("coord", 1, "coordinator")[0]
	fresh := c.NewNodes("tr", 1, "trainer")[0]
	useReplica(t, replica.URL(), pub, coord, fresh)
	c.start(coord)
	for _, n := range []*harness.Node{pub, fresh} {
		c.start(n, "--bootstrap", coord.P2PAddr())
		replica.Mint(principal.MustDecode(n.Info().ICPPrincipal), 10_000_000)
	}
	waitHeard(t, coord, pub, fresh)
	path, sum := writeRandom(t, 1<<20)
	res, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "paid", Price: "1000", Coordinators: []string{coord.Info().PeerID}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error { _, err := fresh.Client().ModelGet(t.Context(), res.ModelID); return err })
	job, err := fresh.Client().ModelFetch(t.Context(), res.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, fresh, job.JobID, 30*time.Second)

	// The attack: 10 peers × 70 sessions, each re-opened as soon as it ends.
	const peers, perPeer = 10, 70
	actx, stop := context.WithCancel(t.Context())
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	held := make([]atomic.Int32, peers)
	maxHeld := make([]atomic.Int32, peers)
	var tried atomic.Int32
	for i := range peers {
		a := newAttacker(t, coord)
		to := a.peerOf(coord)
		for range perPeer {
			wg.Go(func() {
				first := true
				for actx.Err() == nil {
					s, err := kex.Dial(actx, a.h, to, keys.PurposeUnlock)
					if first {
						tried.Add(1)
						first = false
					}
					if err != nil {
						select {
						case <-actx.Done():
						case <-time.After(200 * time.Millisecond):
						}
						continue
					}
					n := held[i].Add(1)
					for m := maxHeld[i].Load(); n > m && !maxHeld[i].CompareAndSwap(m, n); m = maxHeld[i].Load() {
					}
					s.Recv(actx, 1) // idle until the coordinator gives up on it, or the test ends
					held[i].Add(-1)
					s.Reset()
				}
			})
		}
	}
	waitFor(t, 60*time.Second, func() error {
		if n := tried.Load(); n < peers*perPeer {
			return errf("attackers opened %d of their %d sessions", n, peers*perPeer)
		}
		return nil
	})
	total := 0
	for i := range held {
		total += int(held[i].Load())
	}
	t.Logf("attackers hold %d idle sessions on the coordinator", total)

	// Meanwhile a fresh trainer pays, unlocks and exports.
	if _, err := fresh.Client().ModelUnlock(t.Context(), adminrpc.UnlockParams{ModelID: res.ModelID}); err != nil {
		t.Errorf("fresh trainer's model_unlock during the attack = %v, want paid and unlocked", err)
	} else if exp, err := fresh.Client().ModelExport(t.Context(), res.ModelID, filepath.Join(t.TempDir(), "m.bin")); err != nil || exp.SHA256 != sum {
		t.Errorf("fresh trainer's export during the attack = %+v, %v; want sha256 %s", exp, err, sum)
	}
	for i := range maxHeld {
		if m := maxHeld[i].Load(); m > kex.MaxSessionsPerPeer {
			t.Errorf("attacker %d held %d sessions at once, want at most %d", i, m, kex.MaxSessionsPerPeer)
		}
	}
}

// fundedAttacker is a hostile trainer that really paid for the lineage: funds come from payer
// (a node with a balance), the payment goes to payee with the memo binding it to the lineage
// and the attacker's peer ID, and the attacker unlocks the model at the coordinator with it.
func fundedAttacker(t *testing.T, coord, payer *harness.Node, replicaURL, model, payee string) *attacker {
	t.Helper()
	ctx := t.Context()
	a := newAttacker(t, coord)
	led, err := icp.New(icp.Config{ReplicaURL: replicaURL, LedgerID: icptest.LedgerID, FetchRootKey: true, Key: a.ed})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := payer.Client().LedgerTransfer(ctx, adminrpc.TransferParams{ToPrincipal: led.Principal().String(), Amount: "100000"}); err != nil {
		t.Fatal(err)
	}
	var lineage [32]byte
	raw, _ := hex.DecodeString(model)
	copy(lineage[:], raw)
	block, err := led.Transfer(ctx, icp.Account{Owner: principal.MustDecode(payee)}, big.NewInt(1000), keys.Memo(lineage, a.h.ID()), time.Now())
	if err != nil {
		t.Fatalf("attacker's payment: %v", err)
	}
	if _, err := keys.Request(ctx, a.h, a.peerOf(coord), keys.PurposeUnlock, &keys.Unlock{Model: raw, Ledger: icptest.LedgerID, Block: block, Payer: led.Principal().String()}); err != nil {
		t.Fatalf("attacker's unlock with its payment: %v", err)
	}
	return a
}

// TestAdversarySybilSamples (attack 4): two sybils that really paid join a round of two honest
// trainers. One claims 2^40 samples and is refused (sample_count) before its update is read;
// the other claims the round's ceiling for an update trained on rotated labels (its norm within
// the bound). FedAvg gives it at most the ceiling's weight, which still swamps the honest
// updates, so the aggregate scores far below the base version on the coordinator's eval_data:
// it is not published, the round fails saying so, and the lineage keeps its previous version.
// Fails before issue 12's fix: 2^40 samples were accepted and the poisoned aggregate published.
func TestAdversarySybilSamples(t *testing.T) {
	rn := newRoundNet(t, 2, false, nil)
	ctx := t.Context()
	rn.evalOnCoordinator(t)
	replicaURL := rn.replica.URL()
	// An honest first round gives the lineage a trained version (accuracy ~0.9).
	runHonest := func(open adminrpc.RoundIDParams) error {
		for _, tr := range rn.trainers {
			res, err := tr.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
			if err != nil {
				return fmt.Errorf("%s train_run: %w", tr.Name, err)
			}
			if _, err := tr.Client().UpdateSubmit(ctx, open.RoundID, res.UpdateID); err != nil {
				return fmt.Errorf("%s update_submit: %w", tr.Name, err)
			}
		}
		return nil
	}
	first, err := rn.coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: rn.model, MinUpdates: 2, Deadline: "3m", Rule: "fedavg", ClipNorm: 50})
	if err != nil {
		t.Fatal(err)
	}
	if err := runHonest(first); err != nil {
		t.Fatal(err)
	}
	var v1 string
	waitFor(t, 60*time.Second, func() error {
		rs, err := rn.coord.Client().RoundList(ctx, rn.model)
		if err != nil || len(rs) != 1 || rs[0].State != "done" {
			return errf("first round = %+v, %v; want done", rs, err)
		}
		v1 = rs[0].NewModel
		return nil
	})
	rep1, err := rn.coord.Client().RoundReport(ctx, first.RoundID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("honest round: accuracy %.3f (base %.3f)", rep1.Metrics["accuracy"], rep1.Metrics["base_accuracy"])

	// The sybils pay for the lineage (its root) like anyone.
	payee := rn.pub.Info().ICPPrincipal
	greedy := fundedAttacker(t, rn.coord, rn.trainers[0], replicaURL, rn.model, payee)
	poisoner := fundedAttacker(t, rn.coord, rn.trainers[1], replicaURL, rn.model, payee)

	second, err := rn.coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: v1, MinUpdates: 3, Deadline: "3m", Rule: "fedavg", ClipNorm: 50, MaxSamples: 100000})
	if err != nil {
		t.Fatal(err)
	}
	// The poisoned update: the current version trained further on rotated labels.
	export := filepath.Join(t.TempDir(), "v1.safetensors")
	if _, err := rn.coord.Client().ModelExport(ctx, v1, export); err != nil {
		t.Fatal(err)
	}
	rawV1, _ := os.ReadFile(export)
	base, err := fl.Parse(rawV1)
	if err != nil {
		t.Fatal(err)
	}
	rotated := &fl.Dataset{X: rn.shards[0].X, Classes: rn.shards[0].Classes}
	for _, y := range rn.shards[0].Y {
		rotated.Y = append(rotated.Y, (y+1)%devnet.DigitsClasses)
	}
	poison, err := fl.TrainLogReg(base, rotated, 3, 32, 0.5, 7)
	if err != nil {
		t.Fatal(err)
	}
	poisonRaw, _ := poison.Encode()
	coordID := greedy.peerOf(rn.coord)

	r := greedy.submitBlind(ctx, coordID, second.RoundID, 1<<40, 0, poisonRaw)
	if r.refusal == nil || r.refusal.Reason != "sample_count" {
		t.Errorf("sybil claiming 2^40 samples = refusal %v, err %v; want refused (sample_count)", r.refusal, r.err)
	}
	t.Logf("2^40-sample claim: refusal %v after %d KiB of body", r.refusal, r.written>>10)
	if r := poisoner.submitBlind(ctx, coordID, second.RoundID, 100000, 0, poisonRaw); r.refusal != nil || r.err != nil {
		t.Fatalf("sybil at the sample ceiling = refusal %v, err %v; want accepted (it passes every per-update check)", r.refusal, r.err)
	}
	if err := runHonest(second); err != nil {
		t.Errorf("honest trainers in the poisoned round: %v", err)
	}
	var round adminrpc.RoundInfo
	waitFor(t, 60*time.Second, func() error {
		rs, err := rn.coord.Client().RoundList(ctx, v1)
		if err != nil || len(rs) != 1 || (rs[0].State != "done" && rs[0].State != "failed") {
			return errf("poisoned round = %+v, %v; want it ended", rs, err)
		}
		round = rs[0]
		return nil
	})
	if round.State != "failed" || round.NewModel != "" {
		t.Errorf("poisoned round = %+v, want failed by the evaluation floor with no new version", round)
	}
	t.Logf("poisoned round: %s: %s", round.State, round.Error)
	if round.State == "done" {
		if rep, err := rn.coord.Client().RoundReport(ctx, second.RoundID); err == nil {
			t.Logf("the published poisoned version scores %.3f against the base's %.3f", rep.Metrics["accuracy"], rep.Metrics["base_accuracy"])
		}
	}
	models, err := rn.coord.Client().ModelList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range models {
		if m.Parent == v1 {
			t.Errorf("model %s was published as a child of %s after the poisoned round", m.ModelID, v1)
		}
	}
}
