package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

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
	// Statement and Sig are the trainer's signed claim (updates.Statement: round, samples,
	// hash, size): the coordinator's proof of what was claimed. PubKey is the trainer's key
	// when its peer ID does not embed it.
	Statement []byte `cbor:"11,keyasint,omitempty"`
	Sig       []byte `cbor:"12,keyasint,omitempty"`
	PubKey    []byte `cbor:"13,keyasint,omitempty"`
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

// incomingDir is the datadir folder (under RoundsDir) where bodies of submissions are spooled
// while they arrive.
const incomingDir = ".incoming"

// serveSubmissions answers updates/submit/2 and updates/round/1: a submission's header is judged
// by decide before any of its body is read; accept verifies the body from the file it was
// spooled to.
func (rs *rounds) serveSubmissions() *updates.Server {
	dir := rs.n.dir.Join(RoundsDir, incomingDir)
	os.RemoveAll(dir) // bodies left by a crash mid-upload: nothing arrives before this returns
	return updates.NewServer(rs.n.kex, &updates.Coordinator{
		Dir:     dir,
		MaxSize: uint64(rs.n.cfg.Train.MaxUpdateMiB) << 20,
		Decide:  rs.decide,
		Accept:  rs.accept,
		Release: rs.release,
		Round:   rs.handleQuery,
	})
}

// release frees the slot decide claimed for a submission.
func (rs *rounds) release(from peer.ID, s *updates.Statement) {
	if lr := rs.liveRound(s.Round); lr != nil {
		rs.unclaim(lr, from.String())
	}
}

// decide judges a submission from its signed header alone: the round must be open on this
// coordinator, the trainer entitled to submit (claim) and its sample count within the round's
// ceiling. It claims the trainer's slot, which Release frees. Refusing a trainer that is not
// entitled writes nothing; an entitled one's out-of-range sample count is recorded as a
// rejected update.
func (rs *rounds) decide(ctx context.Context, from peer.ID, s *updates.Statement) *updates.Receipt {
	n := rs.n
	lr := rs.liveRound(s.Round)
	if lr == nil {
		if r, err := rs.get(s.Round); err == nil && r.Coordinator == n.host.ID().String() {
			return receipt(adminrpc.CodeConflict, "round %s is %s: it takes no more updates", s.Round, r.State)
		}
		return receipt(adminrpc.CodeNotFound, "this coordinator runs no round %q", s.Round)
	}
	if res := rs.claim(lr, from); res != nil {
		return res
	}
	lr.mu.Lock()
	ceiling := lr.r.SampleCeiling()
	lr.mu.Unlock()
	if s.Samples == 0 || s.Samples > ceiling {
		defer rs.unclaim(lr, from.String())
		err := fmt.Errorf("%w: %d samples claimed, round %s allows 1 to %d per trainer", fl.ErrSamples, s.Samples, s.Round, ceiling)
		rec := updateRecord{Trainer: from.String(), Samples: s.Samples, SHA256: s.SHA256, At: time.Now().UTC(), Reason: fl.Reason(err)}
		if res := rs.record(lr, &rec, nil, s.Samples); res != nil {
			return res
		}
		rs.log.Info("update rejected", "round", s.Round, "peer", from, "reason", rec.Reason, "err", err)
		return &updates.Receipt{Code: adminrpc.CodeUpdateRejected, Message: "update rejected: " + err.Error(), Reason: rec.Reason}
	}
	return nil
}

// accept verifies an update spooled to disk and keeps it: accepted updates are moved into the
// round's folder, recorded with the trainer's signed statement and their commitment anchored
// before the trainer gets its receipt; rejected ones are recorded with their reason. Reaching
// the minimum starts aggregation. The round's lock is held only to record the outcome:
// verifying (a pass over the whole model) and anchoring (a Calimero call) run unlocked, so
// trainers do not wait on each other. The trainer's slot was claimed by decide.
func (rs *rounds) accept(ctx context.Context, from peer.ID, up *updates.Upload) *updates.Receipt {
	s := up.Statement
	lr := rs.liveRound(s.Round)
	if lr == nil {
		return receipt(adminrpc.CodeConflict, "round %s ended while the update arrived: it takes no more updates", s.Round)
	}
	trainer := from.String()
	rec := updateRecord{
		Trainer: trainer, Samples: s.Samples, SHA256: s.SHA256, At: time.Now().UTC(),
		Statement: up.Header.Statement, Sig: up.Header.Sig, PubKey: up.Header.PubKey,
	}
	var raw []byte // the clipped update, when it replaces the received one
	u, err := fl.ParseFile(up.Path, int64(s.Size))
	if err == nil {
		rec.Metrics = hookMetrics(u)
		rec.Norm, err = fl.Check(lr.base, u, s.Samples, lr.r.ClipNorm)
		if errors.Is(err, fl.ErrNorm) && lr.r.ClipMode == announce.ClipScale {
			if raw, err = fl.Clip(lr.base, u, rec.Norm, lr.r.ClipNorm).Encode(); err == nil {
				rec.Clipped = true
				u, err = fl.Parse(raw)
			}
		}
	}
	if err != nil {
		rec.Reason = fl.Reason(err)
		if res := rs.record(lr, &rec, nil, s.Samples); res != nil {
			return res
		}
		rs.log.Info("update rejected", "round", s.Round, "peer", trainer, "reason", rec.Reason, "err", err)
		return &updates.Receipt{Code: adminrpc.CodeUpdateRejected, Message: "update rejected: " + err.Error(), Reason: rec.Reason, Norm: rec.Norm}
	}
	rec.Accepted = true
	path := rs.updatePath(s.Round, trainer)
	if raw != nil {
		err = writePrivate(path, raw)
	} else if err = os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
		err = os.Rename(up.Path, path) // the spooled file is 0600 and in the same datadir
	}
	if err != nil {
		return receipt(adminrpc.CodeInternal, "store update: %v", err)
	}
	rec.Anchor = rs.anchorCommitment(ctx, &calimero.Commitment{
		Kind: calimero.KindUpdate, Round: s.Round, Model: lr.r.Model, Hashes: [][]byte{rec.SHA256}, Samples: s.Samples, Subject: []byte(from),
	})
	if res := rs.record(lr, &rec, u, s.Samples); res != nil {
		os.Remove(path)
		return res
	}
	return &updates.Receipt{Norm: rec.Norm, Clipped: rec.Clipped, Anchor: rec.Anchor}
}

// claim reserves a trainer's one submission to a round while it is checked: refused if the round
// is not open, the trainer submitted before or is submitting now, or did not pay for the lineage.
func (rs *rounds) claim(lr *liveRound, from peer.ID) *updates.Receipt {
	n, trainer := rs.n, from.String()
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.r.State != announce.RoundOpen {
		return receipt(adminrpc.CodeConflict, "round %s is %s: it takes no more updates", lr.r.ID, lr.r.State)
	}
	if has, _ := n.store.Has(store.UpdateKey(lr.r.ID, trainer)); has || lr.claimed[trainer] {
		return receipt(adminrpc.CodeConflict, "duplicate submission: %s already submitted an update to round %s", trainer, lr.r.ID)
	}
	baseID := content.ModelID(lr.r.Model)
	baseRec, err := n.models.get(baseID)
	if err != nil {
		return receipt(adminrpc.CodeInternal, "base model: %v", err)
	}
	lineage := baseRec.Lineage()
	if has, _ := n.store.Has(store.GrantKey(lineage, trainer)); !has && !n.publishedLineage(baseRec, lineage, from) {
		return receipt(adminrpc.CodeNotUnlocked, "only trainers who paid for the model's lineage may submit updates")
	}
	if lr.claimed == nil {
		lr.claimed = map[string]bool{}
	}
	lr.claimed[trainer] = true
	return nil
}

func (rs *rounds) unclaim(lr *liveRound, trainer string) {
	lr.mu.Lock()
	delete(lr.claimed, trainer)
	lr.mu.Unlock()
}

// record stores a verified update's outcome and counts it; an accepted one (u non-nil) is folded
// into the running FedAvg. A round that closed meanwhile refuses it, and a failed write rolls
// the counters back, so the trainer may submit again.
func (rs *rounds) record(lr *liveRound, rec *updateRecord, u *fl.File, samples uint64) *updates.Receipt {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.r.State != announce.RoundOpen {
		return receipt(adminrpc.CodeConflict, "round %s is %s: it takes no more updates", lr.r.ID, lr.r.State)
	}
	counter := &lr.r.Rejected
	if rec.Accepted {
		counter = &lr.r.Updates
	}
	*counter++
	if err := rs.save(lr, func(tx *store.Tx) error { return tx.Put(store.UpdateKey(lr.r.ID, rec.Trainer), rec) }); err != nil {
		*counter--
		return receipt(adminrpc.CodeInternal, "record update: %v", err)
	}
	if !rec.Accepted {
		return nil
	}
	if lr.sums != nil { // fold it in now: aggregation at quorum then only divides
		if err := lr.sums.Add(u, samples); err != nil {
			rs.fail(lr, fmt.Sprintf("fold the update of %s: %v", rec.Trainer, err))
			return receipt(adminrpc.CodeInternal, "fold update: %v", err)
		}
	}
	rs.log.Info("update accepted", "round", lr.r.ID, "peer", rec.Trainer, "samples", samples, "norm", rec.Norm, "clipped", rec.Clipped, "updates", lr.r.Updates)
	if lr.r.Updates >= lr.r.MinUpdates {
		rs.bg.run(func(context.Context) { rs.aggregate(lr) })
	}
	return nil
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
