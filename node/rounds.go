package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/store"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// RoundsDir is the datadir folder where a coordinator keeps the accepted updates of open rounds.
const RoundsDir = "rounds"

// reannounceEvery is how often a coordinator repeats its open rounds for late joiners.
const reannounceEvery = 10 * time.Second

// trimFraction is what trimmed_mean drops at each end of every coordinate.
const trimFraction = 0.2

// rounds is the node's training-round service. Every node follows round announcements; a
// coordinator runs its own rounds: it verifies and keeps updates, aggregates on quorum or at the
// deadline, publishes the aggregate as a new model version, anchors the commitments and writes
// the report. The trainer's side is in training.go.
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
	mu    sync.Mutex // serialises submissions, state changes and aggregation
	r     announce.Round
	base  *fl.File
	sums  *fl.FedAvg // fedavg rounds: every accepted update, folded in as it arrives
	timer *time.Timer
	ended chan struct{} // closed when the round is done or failed
}

// updateRecord is what a coordinator keeps about one submitted update.
type updateRecord struct {
	Trainer  string    `cbor:"1,keyasint"`
	Samples  uint64    `cbor:"2,keyasint"`
	Norm     float64   `cbor:"3,keyasint"`
	Accepted bool      `cbor:"4,keyasint"`
	Reason   string    `cbor:"5,keyasint,omitempty"`
	Clipped  bool      `cbor:"6,keyasint,omitempty"`
	SHA256   []byte    `cbor:"7,keyasint"`
	Anchor   string    `cbor:"8,keyasint,omitempty"`
	At       time.Time `cbor:"9,keyasint"`
	// Metrics are numeric metadata of the update (what the hook reported, e.g. train_accuracy).
	Metrics map[string]float64 `cbor:"10,keyasint,omitempty"`
}

// maxHookMetrics caps the metrics kept from one update's metadata.
const maxHookMetrics = 16

// hookMetrics returns the numeric metadata of an update, except the sample count.
func hookMetrics(f *fl.File) map[string]float64 {
	var out map[string]float64
	for k, v := range f.Metadata {
		x, err := strconv.ParseFloat(v, 64)
		if k == "samples" || err != nil || math.IsNaN(x) || math.IsInf(x, 0) || len(k) > 64 || len(out) >= maxHookMetrics {
			continue
		}
		if out == nil {
			out = map[string]float64{}
		}
		out[k] = x
	}
	return out
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
		maxUpdate := n.cfg.Train.MaxUpdateMiB<<20 + 64<<10
		updates.Serve(n.kex, updates.PurposeSubmit, maxUpdate, rs.handleSubmit)
		updates.Serve(n.kex, updates.PurposeRound, updates.MaxReceipt, rs.handleQuery)
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
		if err := rs.remember(r); err != nil {
			rs.log.Warn("store round", "round", r.ID, "err", err)
		}
	}
}

// remember stores r if it is newer than what this node holds.
func (rs *rounds) remember(r *announce.Round) error {
	return rs.n.store.Update(func(tx *store.Tx) error {
		var old announce.Round
		if err := tx.Get(store.RoundKey(r.ID), &old); err == nil && (old.Seq >= r.Seq || old.Coordinator != r.Coordinator) {
			return nil
		}
		return tx.Put(store.RoundKey(r.ID), r)
	})
}

// get returns a round as this node knows it.
func (rs *rounds) get(id string) (*announce.Round, error) {
	var r announce.Round
	if err := rs.n.store.Get(store.RoundKey(id), &r); err != nil {
		return nil, err
	}
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
		return tx.Put(store.RoundKey(lr.r.ID), &lr.r)
	})
	if err != nil {
		return err
	}
	rs.announce(lr.r)
	return nil
}

// loadBase decrypts and parses the base model of a round on its coordinator.
func (rs *rounds) loadBase(id content.ModelID) (*fl.File, error) {
	var buf bytes.Buffer
	if rec, err := rs.n.models.get(id); err == nil {
		buf.Grow(int(rec.Manifest.Size)) // exactly the model: it stays in memory while the round is open
	}
	if _, err := rs.n.models.decrypt(id, &buf); err != nil {
		return nil, err
	}
	f, err := fl.Parse(buf.Bytes())
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
	switch p.Rule {
	case fl.RuleFedAvg, fl.RuleMedian, fl.RuleTrimmedMean:
	case "":
		p.Rule = fl.RuleFedAvg
	default:
		return "", adminrpc.Errorf(adminrpc.CodeInvalidParams, "rule %q is not one of fedavg, median, trimmed_mean", p.Rule)
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
	lr := &liveRound{base: base, sums: newSums(p.Rule, base), ended: make(chan struct{}), r: announce.Round{
		ID: hex.EncodeToString(rid[:]), Model: rec.ID[:], Coordinator: n.host.ID().String(),
		MinUpdates: p.MinUpdates, Deadline: deadline.UnixMilli(), Rule: p.Rule, ClipNorm: p.ClipNorm,
		ClipMode: p.ClipMode, State: announce.RoundOpen, OpenedAt: now.UnixMilli(),
	}}
	if err := lr.r.Check(); err != nil {
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
		var r announce.Round
		if decode(&r) == nil && r.Coordinator == rs.n.host.ID().String() && (r.State == announce.RoundOpen || r.State == announce.RoundAggregating) {
			mine = append(mine, r)
		}
		return nil
	})
	for _, r := range mine {
		lr := &liveRound{r: r, ended: make(chan struct{})}
		base, err := rs.loadBase(content.ModelID(r.Model))
		if err == nil {
			lr.base, lr.sums = base, newSums(r.Rule, base)
			err = rs.refold(lr)
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

// newSums starts the running FedAvg of a round with rule fedavg (nil for the robust rules, which
// need every update at once).
func newSums(rule string, base *fl.File) *fl.FedAvg {
	if rule != fl.RuleFedAvg {
		return nil
	}
	return fl.NewFedAvg(base)
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

func receipt(code int, format string, args ...any) *updates.Receipt {
	return &updates.Receipt{Code: code, Message: fmt.Sprintf(format, args...)}
}

// handleQuery answers a round lookup from the store.
func (rs *rounds) handleQuery(ctx context.Context, from peer.ID, q *updates.Query) *updates.Receipt {
	r, err := rs.get(q.Round)
	if err != nil || r.Coordinator != rs.n.host.ID().String() {
		return receipt(adminrpc.CodeNotFound, "this coordinator runs no round %q", q.Round)
	}
	b, err := r.Encode()
	if err != nil {
		return receipt(adminrpc.CodeInternal, "encode round: %v", err)
	}
	return &updates.Receipt{Round: b}
}

// handleSubmit verifies an update and keeps it: accepted updates are written to disk, recorded
// and their commitment anchored before the trainer gets its receipt; rejected ones are recorded
// with their reason. Reaching the minimum starts aggregation.
func (rs *rounds) handleSubmit(ctx context.Context, from peer.ID, s *updates.Submit) *updates.Receipt {
	n := rs.n
	lr := rs.liveRound(s.Round)
	if lr == nil {
		if r, err := rs.get(s.Round); err == nil && r.Coordinator == n.host.ID().String() {
			return receipt(adminrpc.CodeConflict, "round %s is %s: it takes no more updates", s.Round, r.State)
		}
		return receipt(adminrpc.CodeNotFound, "this coordinator runs no round %q", s.Round)
	}
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.r.State != announce.RoundOpen {
		return receipt(adminrpc.CodeConflict, "round %s is %s: it takes no more updates", s.Round, lr.r.State)
	}
	trainer := from.String()
	if has, _ := n.store.Has(store.UpdateKey(s.Round, trainer)); has {
		return receipt(adminrpc.CodeConflict, "duplicate submission: %s already submitted an update to round %s", trainer, s.Round)
	}
	baseID := content.ModelID(lr.r.Model)
	baseRec, err := n.models.get(baseID)
	if err != nil {
		return receipt(adminrpc.CodeInternal, "base model: %v", err)
	}
	lineage := baseRec.Manifest.LineageOf(baseID)
	if has, _ := n.store.Has(store.GrantKey(lineage, trainer)); !has && !n.publishedLineage(baseRec, lineage, from) {
		return receipt(adminrpc.CodeNotUnlocked, "only trainers who paid for the model's lineage may submit updates")
	}
	if err := s.Verify(); err != nil {
		return receipt(adminrpc.CodeIntegrity, "%v", err)
	}
	rec := updateRecord{Trainer: trainer, Samples: s.Samples, SHA256: s.SHA256, At: time.Now().UTC()}
	raw := s.Update
	u, err := fl.Parse(raw)
	if err == nil {
		rec.Metrics = hookMetrics(u)
		rec.Norm, err = fl.Check(lr.base, u, s.Samples, lr.r.ClipNorm)
		if errors.Is(err, fl.ErrNorm) && lr.r.ClipMode == announce.ClipScale {
			if raw, err = fl.Clip(lr.base, u, rec.Norm, lr.r.ClipNorm).Encode(); err == nil {
				rec.Clipped = true
			}
		}
	}
	if err != nil {
		rec.Reason = fl.Reason(err)
		lr.r.Rejected++
		if serr := rs.save(lr, func(tx *store.Tx) error { return tx.Put(store.UpdateKey(s.Round, trainer), &rec) }); serr != nil {
			return receipt(adminrpc.CodeInternal, "record update: %v", serr)
		}
		rs.log.Info("update rejected", "round", s.Round, "peer", trainer, "reason", rec.Reason, "err", err)
		return &updates.Receipt{Code: adminrpc.CodeUpdateRejected, Message: "update rejected: " + err.Error(), Reason: rec.Reason, Norm: rec.Norm}
	}
	rec.Accepted = true
	if err := writePrivate(rs.updatePath(s.Round, trainer), raw); err != nil {
		return receipt(adminrpc.CodeInternal, "store update: %v", err)
	}
	rec.Anchor = rs.anchorCommitment(ctx, &calimero.Commitment{
		Kind: calimero.KindUpdate, Round: s.Round, Model: lr.r.Model, Hashes: [][]byte{rec.SHA256}, Samples: s.Samples, Subject: []byte(from),
	})
	lr.r.Updates++
	if err := rs.save(lr, func(tx *store.Tx) error { return tx.Put(store.UpdateKey(s.Round, trainer), &rec) }); err != nil {
		return receipt(adminrpc.CodeInternal, "record update: %v", err)
	}
	if lr.sums != nil { // fold it in now: aggregation at quorum then only divides
		if rec.Clipped {
			u, _ = fl.Parse(raw)
		}
		lr.sums.Add(u, s.Samples)
	}
	rs.log.Info("update accepted", "round", s.Round, "peer", trainer, "samples", s.Samples, "norm", rec.Norm, "clipped", rec.Clipped, "updates", lr.r.Updates)
	if lr.r.Updates >= lr.r.MinUpdates {
		rs.bg.run(func(context.Context) { rs.aggregate(lr) })
	}
	return &updates.Receipt{Norm: rec.Norm, Clipped: rec.Clipped, Anchor: rec.Anchor}
}

func (rs *rounds) updatePath(round, trainer string) string {
	return rs.n.dir.Join(RoundsDir, round, trainer+".safetensors")
}

// anchorCommitment signs and anchors c, returning its kv-store key ("" when anchoring is off or
// Calimero cannot be reached: the round goes on and the report lists only real anchors).
func (rs *rounds) anchorCommitment(ctx context.Context, c *calimero.Commitment) string {
	if !rs.n.anchoring.on() {
		return ""
	}
	c.CreatedAt = time.Now().UnixMilli()
	signed, err := calimero.SignCommitment(c, rs.n.key)
	if err != nil {
		rs.log.Warn("sign commitment", "err", err)
		return ""
	}
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	id, err := rs.n.anchoring.anchors.Put(actx, signed)
	if err != nil {
		rs.log.Warn("anchor commitment", "kind", c.Kind, "round", c.Round, "err", err)
		return ""
	}
	return calimero.AnchorKey(id)
}

// aggregate folds the accepted updates of a round, publishes the result as a new version of the
// base model and writes the report. It runs once per round; submissions that arrive meanwhile
// are refused as late.
func (rs *rounds) aggregate(lr *liveRound) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	switch lr.r.State {
	case announce.RoundOpen:
		lr.r.State = announce.RoundAggregating
		if err := rs.save(lr, nil); err != nil {
			rs.log.Error("save round", "round", lr.r.ID, "err", err)
			return
		}
	case announce.RoundAggregating: // resumed after a restart
	default:
		return
	}
	rep, err := rs.runAggregation(lr)
	if err != nil {
		if rs.bg.ctx.Err() != nil {
			return // shutting down: the round stays "aggregating" and resumes on restart
		}
		rs.fail(lr, fmt.Sprintf("aggregation failed: %v", err))
		return
	}
	newID, _ := parseModelID(rep.NewModel)
	lr.r.State, lr.r.NewModel = announce.RoundDone, newID[:]
	if err := rs.save(lr, func(tx *store.Tx) error { return tx.Put(store.ReportKey(lr.r.ID), rep) }); err != nil {
		rs.log.Error("save round report", "round", lr.r.ID, "err", err)
		return
	}
	os.RemoveAll(rs.n.dir.Join(RoundsDir, lr.r.ID)) // the aggregate is published; the report keeps the hashes
	rs.end(lr)
	rs.log.Info("round done", "round", lr.r.ID, "new_model", rep.NewModel, "accepted", lr.r.Updates, "metrics", rep.Metrics)
}

// runAggregation does the work of aggregate. The caller holds lr.mu.
func (rs *rounds) runAggregation(lr *liveRound) (*adminrpc.RoundReport, error) {
	n, r := rs.n, &lr.r
	began := time.Now()
	var recs []updateRecord
	err := n.store.Scan(store.UpdatePrefix(r.ID), func(_ store.Key, decode func(any) error) error {
		var u updateRecord
		if err := decode(&u); err != nil {
			return err
		}
		recs = append(recs, u)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Trainer < recs[j].Trainer })
	rep := &adminrpc.RoundReport{
		RoundID: r.ID, BaseModel: hex.EncodeToString(r.Model), Rule: r.Rule, Participants: []adminrpc.Participant{},
		Anchors: []string{}, Metrics: map[string]float64{}, Timings: map[string]float64{},
	}
	var accepted []updateRecord
	var samples uint64
	var normSum float64
	for _, u := range recs {
		rep.Participants = append(rep.Participants, adminrpc.Participant{
			PeerID: u.Trainer, Samples: u.Samples, Norm: u.Norm, Accepted: u.Accepted, Reason: u.Reason, Clipped: u.Clipped, SHA256: hex.EncodeToString(u.SHA256), Metrics: u.Metrics,
		})
		if u.Accepted {
			accepted = append(accepted, u)
			samples += u.Samples
			normSum += u.Norm
			if u.Anchor != "" {
				rep.Anchors = append(rep.Anchors, u.Anchor)
			}
		}
	}
	if len(accepted) == 0 {
		return nil, fl.ErrNoUpdates
	}
	// FedAvg folded each update in as it was accepted (after a restart, streamed back from its
	// file): the base and the sums are all the memory it needs (2 × the model; BENCHMARKS.md).
	// The robust rules need every update at once, coordinate by coordinate.
	var result *fl.File
	if lr.sums != nil {
		result, err = lr.sums.Result()
		lr.sums = nil
	} else {
		var all []*fl.File
		for _, u := range accepted {
			f, err := rs.readUpdate(r.ID, u)
			if err != nil {
				return nil, err
			}
			all = append(all, f)
		}
		result, err = fl.Robust(r.Rule, lr.base, all, trimFraction)
	}
	if err != nil {
		return nil, err
	}
	result.Metadata = map[string]string{"califusion.round": r.ID, "califusion.rule": r.Rule, "samples": fmt.Sprint(samples)}
	path := n.dir.Join(RoundsDir, r.ID, "aggregate.safetensors")
	sum, err := writeSafetensors(path, result)
	if err != nil {
		return nil, err
	}
	rep.AggregateSHA256 = hex.EncodeToString(sum[:])
	rep.Timings["collect_seconds"] = began.Sub(time.UnixMilli(r.OpenedAt)).Seconds()
	rep.Timings["aggregate_seconds"] = time.Since(began).Seconds()

	pubStart := time.Now()
	baseID := content.ModelID(r.Model)
	baseRec, err := n.models.get(baseID)
	if err != nil {
		return nil, err
	}
	rec, err := n.models.publish(rs.bg.ctx, PublishParams{
		Path: path, Name: baseRec.Manifest.Name, Parent: &baseID,
		Description: fmt.Sprintf("%s of %d updates (%d samples) in round %s", r.Rule, len(accepted), samples, r.ID),
	})
	if err != nil {
		return nil, fmt.Errorf("publish the aggregate: %w", err)
	}
	rep.NewModel = hex.EncodeToString(rec.ID[:])
	rep.Timings["publish_seconds"] = time.Since(pubStart).Seconds()
	if n.anchoring.known(rec.ID) == calimero.StateVerified {
		rep.Anchors = append(rep.Anchors, calimero.AnchorKey(rec.ID))
	}
	hashes := [][]byte{sum[:], rec.ID[:]}
	for _, u := range accepted {
		if len(hashes) < 64 {
			hashes = append(hashes, u.SHA256)
		}
	}
	if a := rs.anchorCommitment(rs.bg.ctx, &calimero.Commitment{Kind: calimero.KindAggregate, Round: r.ID, Model: r.Model, Hashes: hashes, Samples: samples}); a != "" {
		rep.Anchors = append(rep.Anchors, a)
	}
	rep.Metrics["accepted"] = float64(len(accepted))
	rep.Metrics["rejected"] = float64(len(recs) - len(accepted))
	rep.Metrics["samples"] = float64(samples)
	rep.Metrics["mean_norm"] = normSum / float64(len(accepted))
	rs.evaluate(lr.base, result, rep.Metrics)
	rep.Timings["total_seconds"] = time.Since(time.UnixMilli(r.OpenedAt)).Seconds()
	return rep, nil
}

// readUpdate loads an accepted update from disk and checks it is the one that was accepted.
func (rs *rounds) readUpdate(round string, u updateRecord) (*fl.File, error) {
	raw, err := os.ReadFile(rs.updatePath(round, u.Trainer))
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(raw); !u.Clipped && !bytes.Equal(sum[:], u.SHA256) {
		return nil, fmt.Errorf("the stored update of %s does not match its accepted hash", u.Trainer)
	}
	return fl.Parse(raw)
}

// foldUpdate streams an accepted update from disk into avg, checking it is the one accepted (a
// mismatch fails the aggregation: the sums already hold part of it).
func (rs *rounds) foldUpdate(avg *fl.FedAvg, round string, u updateRecord) error {
	f, err := os.Open(rs.updatePath(round, u.Trainer))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	h := sha256.New()
	if err := avg.AddFrom(bufio.NewReaderSize(io.TeeReader(f, h), 1<<20), fi.Size(), u.Samples); err != nil {
		return fmt.Errorf("fold the update of %s: %w", u.Trainer, err)
	}
	if !u.Clipped && !bytes.Equal(h.Sum(nil), u.SHA256) {
		return fmt.Errorf("the stored update of %s does not match its accepted hash", u.Trainer)
	}
	return nil
}

// writeSafetensors streams f into path (mode 0600, synced, renamed into place) and returns the
// SHA-256 of what it wrote.
func writeSafetensors(path string, f *fl.File) ([32]byte, error) {
	var sum [32]byte
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return sum, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return sum, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(tmp, h), 1<<20)
	_, err = f.WriteTo(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	h.Sum(sum[:0])
	return sum, err
}

// evaluate scores the base and the aggregate on the coordinator's held-out data, if configured.
func (rs *rounds) evaluate(base, result *fl.File, metrics map[string]float64) {
	path := rs.n.cfg.Train.EvalData
	if path == "" {
		return
	}
	d, err := fl.LoadCSV(path, rs.n.cfg.Train.FeatureScale)
	if err != nil {
		rs.log.Warn("load train.eval_data", "err", err)
		return
	}
	metrics["accuracy"] = fl.Accuracy(result, d)
	metrics["base_accuracy"] = fl.Accuracy(base, d)
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
