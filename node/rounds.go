package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/store"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// RoundsDir is the datadir folder where a coordinator keeps the accepted updates of open rounds.
const RoundsDir = "rounds"

// reannounceEvery is how often a coordinator repeats its open rounds for late joiners.
const reannounceEvery = 10 * time.Second

// rounds is the node's training-round service. Every node follows round announcements; a
// coordinator runs its own rounds: it verifies and keeps updates, aggregates on quorum or at the
// deadline, publishes the aggregate as a new model version, anchors the commitments and writes
// the report (submissions.go, aggregation.go). The trainer's side is in training.go.
type rounds struct {
	n     *Node
	log   *slog.Logger
	topic *pubsub.Topic

	bg *tasks // deadlines and aggregations; shutdown waits for them

	mu   sync.Mutex
	live map[string]*liveRound // rounds this node coordinates that have not ended
}

// liveRound is a round this node coordinates, with its decrypted base model.
type liveRound struct {
	mu   sync.Mutex // serialises submissions, state changes and aggregation
	r    announce.Round
	base *fl.File
	sums fl.Folder // rules that fold (fedavg): every accepted update, folded in as it arrives
	// claimed are the trainers whose submission is being checked right now
	claimed map[string]bool
	timer   *time.Timer
	ended   chan struct{} // closed when the round is done or failed
}

func (n *Node) startRounds(context.Context) error {
	rs := &rounds{n: n, log: n.log.With("subsys", "rounds"), live: map[string]*liveRound{}}
	rs.bg = newTasks(n.ctx)
	n.rounds = rs
	topic, sub, err := n.joinTopic(announce.RoundsTopic, rs.log, func(from peer.ID, b []byte) (any, error) {
		return announce.DecodeRound(b, from)
	})
	if err != nil {
		return err
	}
	rs.topic = topic
	n.spawn(func(ctx context.Context) { rs.receive(ctx, sub) })
	if n.cfg.HasRole(config.RoleCoordinator) {
		n.onStop(rs.serveSubmissions().Close)
		n.spawn(rs.resume)
		n.spawn(rs.reannounce)
	}
	n.onStop(func() error {
		rs.bg.stop()
		rs.mu.Lock()
		for _, lr := range rs.live {
			if lr.timer != nil {
				lr.timer.Stop()
			}
		}
		rs.mu.Unlock()
		return nil
	})
	return nil
}

// receive keeps the newest snapshot of every round announced by its coordinator.
func (rs *rounds) receive(ctx context.Context, sub *pubsub.Subscription) {
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		if msg.GetFrom() == rs.n.host.ID() {
			continue // this node's own rounds are kept authoritatively
		}
		r, ok := msg.ValidatorData.(*announce.Round)
		if !ok {
			continue
		}
		// The validator checked that the author is the round's Coordinator; a round whose base
		// model is known here is kept only if that model's lineage root authorises it (one whose
		// model is not known yet is checked before anything is trained for it).
		if err := rs.authorised(r); err != nil && !errors.Is(err, errRoundModelUnknown) {
			rs.log.Info("round refused", "round", r.ID, "peer", r.Coordinator, "err", err)
			continue
		}
		if err := rs.remember(r); err != nil {
			rs.log.Warn("store round", "round", r.ID, "err", err)
		}
	}
}

var errRoundModelUnknown = errors.New("the round's model is not in this node's catalog")

// authorised checks that r's coordinator may run rounds on its base model: the model's lineage
// root (derived) must be published by it or name it among its coordinators. The error is an
// *adminrpc.Error with CodeRole, or wraps errRoundModelUnknown.
func (rs *rounds) authorised(r *announce.Round) error {
	id := content.ModelID(r.Model)
	rec, err := rs.n.models.get(id)
	if err != nil {
		return fmt.Errorf("%w: %x", errRoundModelUnknown, id[:8])
	}
	coord, err := peer.Decode(r.Coordinator)
	if err != nil || !rec.authorises(coord) {
		return adminrpc.Errorf(adminrpc.CodeRole, "round %s is run by %s, which the lineage of model %x does not name as a coordinator: refusing it", r.ID, r.Coordinator, id[:8])
	}
	return nil
}

// remember stores r if it is newer than what this node holds.
func (rs *rounds) remember(r *announce.Round) error {
	return rs.n.store.Update(func(tx *store.Tx) error {
		var old store.RoundRecord
		if err := tx.Get(store.RoundKey(r.ID), &old); err == nil && (old.Seq >= r.Seq || old.Coordinator != r.Coordinator) {
			return nil
		}
		return tx.Put(store.RoundKey(r.ID), roundRecord(r))
	})
}

// get returns a round as this node knows it.
func (rs *rounds) get(id string) (*announce.Round, error) {
	var rec store.RoundRecord
	if err := rs.n.store.Get(store.RoundKey(id), &rec); err != nil {
		return nil, err
	}
	r := roundOf(&rec)
	return &r, nil
}

func (rs *rounds) announce(r announce.Round) {
	b, err := r.Encode()
	if err != nil {
		rs.log.Warn("encode round", "round", r.ID, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(rs.bg.ctx, 5*time.Second)
	defer cancel()
	if err := rs.topic.Publish(ctx, b); err != nil {
		rs.log.Debug("announce round", "round", r.ID, "err", err)
	}
}

// reannounce repeats the open rounds so that nodes that joined later learn them.
func (rs *rounds) reannounce(ctx context.Context) {
	t := time.NewTicker(reannounceEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rs.mu.Lock()
		var snaps []announce.Round
		for _, lr := range rs.live {
			lr.mu.Lock()
			snaps = append(snaps, lr.r)
			lr.mu.Unlock()
		}
		rs.mu.Unlock()
		for _, r := range snaps {
			rs.announce(r)
		}
	}
}

// save persists a live round's state (and any extra writes) in one transaction, then announces
// it. The caller holds lr.mu.
func (rs *rounds) save(lr *liveRound, extra func(tx *store.Tx) error) error {
	lr.r.Seq++
	err := rs.n.store.Update(func(tx *store.Tx) error {
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return tx.Put(store.RoundKey(lr.r.ID), roundRecord(&lr.r))
	})
	if err != nil {
		return err
	}
	rs.announce(lr.r)
	return nil
}

// loadBase decrypts and parses the base model of a round on its coordinator.
func (rs *rounds) loadBase(id content.ModelID) (*fl.File, error) {
	plain, err := rs.n.models.plaintext(id) // it stays in memory while the round is open
	if err != nil {
		return nil, err
	}
	f, err := fl.Parse(plain)
	if err != nil {
		return nil, fmt.Errorf("the model is not a safetensors file, so it cannot be trained: %w", err)
	}
	return f, nil
}

// parseDeadline reads an RFC 3339 time or a duration from now.
func parseDeadline(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	return time.Parse(time.RFC3339, s)
}

// open starts a round on this coordinator.
func (rs *rounds) open(ctx context.Context, p adminrpc.RoundOpenParams) (string, error) {
	n := rs.n
	if err := n.requireRole(config.RoleCoordinator); err != nil {
		return "", err
	}
	rec, err := n.lookup(p.ModelID)
	if err != nil {
		return "", err
	}
	if !rec.authorises(n.host.ID()) {
		return "", adminrpc.Errorf(adminrpc.CodeRole, "the lineage of model %s does not name this node as a coordinator, so trainers would refuse its rounds: its publisher names coordinators when it publishes (model publish --coordinator)", p.ModelID)
	}
	if p.Rule == "" {
		p.Rule = fl.RuleFedAvg
	}
	if fl.ValidRule(p.Rule) != nil {
		return "", adminrpc.Errorf(adminrpc.CodeInvalidParams, "rule %q is not one of %s", p.Rule, strings.Join(fl.Rules(), ", "))
	}
	if p.MinUpdates < 1 || p.MinUpdates > 10000 {
		return "", adminrpc.Errorf(adminrpc.CodeInvalidParams, "min_updates must be between 1 and 10000")
	}
	if p.ClipMode != "" && p.ClipMode != announce.ClipReject && p.ClipMode != announce.ClipScale {
		return "", adminrpc.Errorf(adminrpc.CodeInvalidParams, "clip_mode %q is not reject or scale", p.ClipMode)
	}
	if p.ClipNorm < 0 {
		return "", adminrpc.Errorf(adminrpc.CodeInvalidParams, "clip_norm must be ≥ 0 (0: no bound)")
	}
	now := time.Now().UTC()
	deadline, err := parseDeadline(p.Deadline, now)
	if err != nil || !deadline.After(now) || deadline.After(now.Add(30*24*time.Hour)) {
		return "", adminrpc.Errorf(adminrpc.CodeInvalidParams, "deadline %q must be a future RFC 3339 time or a duration such as \"10m\", within 30 days", p.Deadline)
	}
	if !n.models.complete(rec) {
		if err := n.waitFetched(ctx, rec); err != nil {
			return "", err
		}
	}
	base, err := rs.loadBase(rec.ID)
	switch {
	case errors.Is(err, errNotUnlocked):
		return "", adminrpc.Errorf(adminrpc.CodeNotUnlocked, "this coordinator holds no key for model %s, so it cannot verify updates: the publisher must escrow it here", p.ModelID)
	case err != nil:
		return "", adminrpc.Errorf(adminrpc.CodeInvalidParams, "model %s: %v", p.ModelID, err)
	}
	var rid [16]byte
	rand.Read(rid[:])
	lr := &liveRound{base: base, ended: make(chan struct{}), r: announce.Round{
		ID: hex.EncodeToString(rid[:]), Model: rec.ID[:], Coordinator: n.host.ID().String(),
		MinUpdates: p.MinUpdates, Deadline: deadline.UnixMilli(), Rule: p.Rule, ClipNorm: p.ClipNorm,
		ClipMode: p.ClipMode, State: announce.RoundOpen, OpenedAt: now.UnixMilli(), MaxSamples: p.MaxSamples,
	}}
	if err := lr.r.Check(); err != nil {
		return "", adminrpc.Errorf(adminrpc.CodeInvalidParams, "%v", err)
	}
	if lr.sums, err = newSums(&lr.r, base); err != nil {
		return "", adminrpc.Errorf(adminrpc.CodeInvalidParams, "%v", err)
	}
	lr.mu.Lock()
	err = rs.save(lr, nil)
	lr.mu.Unlock()
	if err != nil {
		return "", err
	}
	rs.track(lr)
	rs.log.Info("round opened", "round", lr.r.ID, "model", p.ModelID, "min_updates", p.MinUpdates, "deadline", deadline, "rule", p.Rule, "clip_norm", p.ClipNorm)
	return lr.r.ID, nil
}

// track makes a round live and arms its deadline.
func (rs *rounds) track(lr *liveRound) {
	rs.mu.Lock()
	rs.live[lr.r.ID] = lr
	rs.mu.Unlock()
	lr.timer = time.AfterFunc(time.Until(lr.r.DeadlineTime()), func() { rs.bg.run(func(context.Context) { rs.deadline(lr) }) })
}

func (rs *rounds) liveRound(id string) *liveRound {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.live[id]
}

// resume picks up this coordinator's unfinished rounds after a restart: open rounds are re-armed
// (or ended if their deadline passed), interrupted aggregations run again.
func (rs *rounds) resume(ctx context.Context) {
	var mine []announce.Round
	rs.n.store.Scan(store.RoundPrefix(), func(_ store.Key, decode func(any) error) error {
		var rec store.RoundRecord
		if decode(&rec) == nil && rec.Coordinator == rs.n.host.ID().String() && (rec.State == announce.RoundOpen || rec.State == announce.RoundAggregating) {
			mine = append(mine, roundOf(&rec))
		}
		return nil
	})
	for _, r := range mine {
		lr := &liveRound{r: r, ended: make(chan struct{})}
		base, err := rs.loadBase(content.ModelID(r.Model))
		if err == nil {
			lr.base = base
			if lr.sums, err = newSums(&lr.r, base); err == nil {
				err = rs.refold(lr)
			}
		}
		if err != nil {
			lr.mu.Lock()
			rs.fail(lr, fmt.Sprintf("the base model cannot be loaded after a restart: %v", err))
			lr.mu.Unlock()
			continue
		}
		rs.track(lr)
		rs.log.Info("round resumed", "round", r.ID, "state", r.State, "updates", r.Updates)
		if r.State == announce.RoundAggregating {
			rs.bg.run(func(context.Context) { rs.aggregate(lr) })
		}
	}
}

// newSums starts the running aggregate of a round whose rule folds updates as they arrive (an
// fl.Folder: fedavg); it is nil for the rules that need every update at once, which aggregation
// reads back from disk (newAggregator).
func newSums(r *announce.Round, base *fl.File) (fl.Folder, error) {
	a, err := newAggregator(r, base)
	if err != nil {
		return nil, err
	}
	f, _ := a.(fl.Folder)
	return f, nil
}

// refold folds a resumed round's accepted updates back into its sums, from their files.
func (rs *rounds) refold(lr *liveRound) error {
	if lr.sums == nil {
		return nil
	}
	return rs.n.store.Scan(store.UpdatePrefix(lr.r.ID), func(_ store.Key, decode func(any) error) error {
		var u updateRecord
		if err := decode(&u); err != nil || !u.Accepted {
			return err
		}
		return rs.foldUpdate(lr.sums, lr.r.ID, u)
	})
}

// fail ends a round as failed. The caller holds lr.mu.
func (rs *rounds) fail(lr *liveRound, why string) {
	lr.r.State, lr.r.Error = announce.RoundFailed, why
	if err := rs.save(lr, nil); err != nil {
		rs.log.Error("save failed round", "round", lr.r.ID, "err", err)
	}
	rs.end(lr)
	rs.log.Warn("round failed", "round", lr.r.ID, "why", why)
}

// end forgets a finished round. The caller holds lr.mu.
func (rs *rounds) end(lr *liveRound) {
	if lr.timer != nil {
		lr.timer.Stop()
	}
	rs.mu.Lock()
	delete(rs.live, lr.r.ID)
	rs.mu.Unlock()
	select {
	case <-lr.ended:
	default:
		close(lr.ended)
	}
}

// deadline ends an open round at its deadline: it aggregates if the minimum is met, or fails.
func (rs *rounds) deadline(lr *liveRound) {
	lr.mu.Lock()
	if lr.r.State != announce.RoundOpen {
		lr.mu.Unlock()
		return
	}
	if lr.r.Updates < lr.r.MinUpdates {
		rs.fail(lr, fmt.Sprintf("the deadline passed with %d of the %d accepted updates needed", lr.r.Updates, lr.r.MinUpdates))
		lr.mu.Unlock()
		return
	}
	lr.mu.Unlock()
	rs.aggregate(lr)
}

// closeNow aggregates a round at once if its minimum is met and returns the new model.
func (rs *rounds) closeNow(ctx context.Context, id string) (string, error) {
	r, err := rs.get(id)
	if err != nil {
		return "", adminrpc.Errorf(adminrpc.CodeNotFound, "round %q is not known", id)
	}
	if r.Coordinator != rs.n.host.ID().String() {
		return "", adminrpc.Errorf(adminrpc.CodeRole, "round %s is coordinated by %s: close it there", id, r.Coordinator)
	}
	if lr := rs.liveRound(id); lr != nil {
		lr.mu.Lock()
		updates, min := lr.r.Updates, lr.r.MinUpdates
		lr.mu.Unlock()
		if updates < min {
			return "", adminrpc.Errorf(adminrpc.CodeConflict, "round %s has %d of the %d accepted updates it needs: it aggregates once they arrive, or fails at its deadline", id, updates, min)
		}
		rs.bg.run(func(context.Context) { rs.aggregate(lr) })
		select {
		case <-lr.ended:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if r, err = rs.get(id); err != nil {
			return "", err
		}
	}
	switch r.State {
	case announce.RoundDone:
		return hex.EncodeToString(r.NewModel), nil
	case announce.RoundFailed:
		return "", adminrpc.Errorf(adminrpc.CodeConflict, "round %s failed: %s", id, r.Error)
	}
	return "", adminrpc.Errorf(adminrpc.CodeConflict, "round %s is %s", id, r.State)
}

// writePrivate writes a file atomically with mode 0600, creating its folder with mode 0700.
func writePrivate(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(path, data, 0o600)
}
