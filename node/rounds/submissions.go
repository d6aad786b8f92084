package rounds

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
	"github.com/califusion/califusion/node/internal/fsutil"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
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
func (s *Service) handleQuery(ctx context.Context, from peer.ID, q *updates.Query) *updates.Receipt {
	r, err := s.Get(q.Round)
	if err != nil || r.Coordinator != s.cfg.Self.String() {
		return receipt(apierr.NotFound, "this coordinator runs no round %q", q.Round)
	}
	b, err := r.Encode()
	if err != nil {
		return receipt(apierr.Internal, "encode round: %v", err)
	}
	return &updates.Receipt{Round: b}
}

// incomingDir is the folder (under RoundsDir) where bodies of submissions are spooled while they
// arrive.
const incomingDir = ".incoming"

// serveSubmissions answers updates/submit/2, updates/round/1 and updates/report/1 (report.go): a submission's header is judged
// by decide before any of its body is read; accept verifies the body from the file it was
// spooled to.
func (s *Service) serveSubmissions() *updates.Server {
	dir := filepath.Join(s.cfg.RoundsDir, incomingDir)
	os.RemoveAll(dir) // bodies left by a crash mid-upload: nothing arrives before this returns
	return updates.NewServer(s.deps.Kex, &updates.Coordinator{
		Dir:     dir,
		MaxSize: uint64(s.cfg.Train.MaxUpdateMiB) << 20,
		Decide:  s.decide,
		Accept:  s.accept,
		Release: s.release,
		Round:   s.handleQuery,
		Report:  s.handleReport,
		SecAgg:  s.serveSecure,
	})
}

// release frees the slot decide claimed for a submission.
func (s *Service) release(from peer.ID, st *updates.Statement) {
	if lr := s.liveRound(st.Round); lr != nil {
		s.unclaim(lr, from.String())
	}
}

// decide judges a submission from its signed header alone: the round must be open on this
// coordinator, the trainer entitled to submit (claim) and its sample count within the round's
// ceiling. It claims the trainer's slot, which Release frees. Refusing a trainer that is not
// entitled writes nothing; an entitled one's out-of-range sample count is recorded as a
// rejected update.
func (s *Service) decide(ctx context.Context, from peer.ID, st *updates.Statement) *updates.Receipt {
	lr := s.liveOrOpening(ctx, st.Round)
	if lr == nil {
		if r, err := s.Get(st.Round); err == nil && r.Coordinator == s.cfg.Self.String() {
			return receipt(apierr.Conflict, "round %s is %s: it takes no more updates", st.Round, r.State)
		}
		return receipt(apierr.NotFound, "this coordinator runs no round %q", st.Round)
	}
	if lr.sec != nil {
		return receipt(apierr.Conflict, "round %s is secure: it takes masked updates over updates/secagg/1 (update_submit runs it), never an update in the clear", st.Round)
	}
	if res := s.claim(lr, from); res != nil {
		return res
	}
	lr.mu.Lock()
	ceiling := lr.r.SampleCeiling()
	lr.mu.Unlock()
	if st.Samples == 0 || st.Samples > ceiling {
		defer s.unclaim(lr, from.String())
		err := fmt.Errorf("%w: %d samples claimed, round %s allows 1 to %d per trainer", fl.ErrSamples, st.Samples, st.Round, ceiling)
		rec := updateRecord{Trainer: from.String(), Samples: st.Samples, SHA256: st.SHA256, At: time.Now().UTC(), Reason: fl.Reason(err)}
		if res := s.record(lr, &rec, nil, st.Samples); res != nil {
			return res
		}
		s.log.Info("update rejected", "round", st.Round, "peer", from, "reason", rec.Reason, "err", err)
		return &updates.Receipt{Code: apierr.UpdateRejected, Message: "update rejected: " + err.Error(), Reason: rec.Reason}
	}
	return nil
}

// accept verifies an update spooled to disk and keeps it: accepted updates are moved into the
// round's folder, recorded with the trainer's signed statement and their commitment anchored
// before the trainer gets its receipt; rejected ones are recorded with their reason. Reaching
// the minimum starts aggregation. The round's lock is held only to record the outcome:
// verifying (a pass over the whole model) and anchoring (a Calimero call) run unlocked, so
// trainers do not wait on each other. The trainer's slot was claimed by decide.
func (s *Service) accept(ctx context.Context, from peer.ID, up *updates.Upload) *updates.Receipt {
	st := up.Statement
	lr := s.liveRound(st.Round)
	if lr == nil {
		return receipt(apierr.Conflict, "round %s ended while the update arrived: it takes no more updates", st.Round)
	}
	trainer := from.String()
	rec := updateRecord{
		Trainer: trainer, Samples: st.Samples, SHA256: st.SHA256, At: time.Now().UTC(),
		Statement: up.Header.Statement, Sig: up.Header.Sig, PubKey: up.Header.PubKey,
	}
	var raw []byte // the clipped update, when it replaces the received one
	u, err := fl.ParseFile(up.Path, int64(st.Size))
	if err == nil {
		rec.Metrics = hookMetrics(u)
		rec.Norm, err = fl.Check(lr.base, u, st.Samples, lr.r.ClipNorm)
		if errors.Is(err, fl.ErrNorm) && lr.r.ClipMode == announce.ClipScale {
			if raw, err = fl.Clip(lr.base, u, rec.Norm, lr.r.ClipNorm).Encode(); err == nil {
				rec.Clipped = true
				u, err = fl.Parse(raw)
			}
		}
	}
	if err != nil {
		rec.Reason = fl.Reason(err)
		if res := s.record(lr, &rec, nil, st.Samples); res != nil {
			return res
		}
		s.log.Info("update rejected", "round", st.Round, "peer", trainer, "reason", rec.Reason, "err", err)
		return &updates.Receipt{Code: apierr.UpdateRejected, Message: "update rejected: " + err.Error(), Reason: rec.Reason, Norm: rec.Norm}
	}
	rec.Accepted = true
	path := s.updatePath(st.Round, trainer)
	if raw != nil {
		err = fsutil.WritePrivate(path, raw)
	} else if err = os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
		err = os.Rename(up.Path, path) // the spooled file is 0600 and in the same datadir
	}
	if err != nil {
		return receipt(apierr.Internal, "store update: %v", err)
	}
	rec.Anchor = s.commit(ctx, &calimero.Commitment{
		Kind: calimero.KindUpdate, Round: st.Round, Model: lr.r.Model, Hashes: [][]byte{rec.SHA256}, Samples: st.Samples, Subject: []byte(from),
	})
	if res := s.record(lr, &rec, u, st.Samples); res != nil {
		os.Remove(path)
		return res
	}
	return &updates.Receipt{Norm: rec.Norm, Clipped: rec.Clipped, Anchor: rec.Anchor}
}

// claim reserves a trainer's one submission to a round while it is checked: refused if the round
// is not open, the trainer submitted before or is submitting now, or did not pay for the lineage.
func (s *Service) claim(lr *liveRound, from peer.ID) *updates.Receipt {
	trainer := from.String()
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.r.State != announce.RoundOpen {
		return receipt(apierr.Conflict, "round %s is %s: it takes no more updates", lr.r.ID, lr.r.State)
	}
	if has, _ := s.deps.Store.Has(store.UpdateKey(lr.r.ID, trainer)); has || lr.claimed[trainer] {
		return receipt(apierr.Conflict, "duplicate submission: %s already submitted an update to round %s", trainer, lr.r.ID)
	}
	baseRec, err := s.deps.Catalog.Get(content.ModelID(lr.r.Model))
	if err != nil {
		return receipt(apierr.Internal, "base model: %v", err)
	}
	if !s.deps.Grants.Entitled(baseRec, from) {
		return receipt(apierr.NotUnlocked, "only trainers who paid for the model's lineage may submit updates")
	}
	if lr.claimed == nil {
		lr.claimed = map[string]bool{}
	}
	lr.claimed[trainer] = true
	return nil
}

func (s *Service) unclaim(lr *liveRound, trainer string) {
	lr.mu.Lock()
	delete(lr.claimed, trainer)
	lr.mu.Unlock()
}

// record stores a verified update's outcome and counts it; an accepted one (u non-nil) is folded
// into the running FedAvg. A round that closed meanwhile refuses it, and a failed write rolls
// the counters back, so the trainer may submit again.
func (s *Service) record(lr *liveRound, rec *updateRecord, u *fl.File, samples uint64) *updates.Receipt {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.r.State != announce.RoundOpen {
		return receipt(apierr.Conflict, "round %s is %s: it takes no more updates", lr.r.ID, lr.r.State)
	}
	counter := &lr.r.Rejected
	if rec.Accepted {
		counter = &lr.r.Updates
	}
	*counter++
	if err := s.save(lr, func(tx *store.Tx) error { return tx.Put(store.UpdateKey(lr.r.ID, rec.Trainer), rec) }); err != nil {
		*counter--
		return receipt(apierr.Internal, "record update: %v", err)
	}
	s.cfg.Metrics.Update(rec.Accepted, rec.Reason)
	if !rec.Accepted {
		return nil
	}
	if lr.sums != nil { // fold it in now: aggregation at quorum then only divides
		if err := lr.sums.Add(u, samples); err != nil {
			s.fail(lr, fmt.Sprintf("fold the update of %s: %v", rec.Trainer, err))
			return receipt(apierr.Internal, "fold update: %v", err)
		}
	}
	s.log.Info("update accepted", "round", lr.r.ID, "peer", rec.Trainer, "samples", samples, "norm", rec.Norm, "clipped", rec.Clipped, "updates", lr.r.Updates)
	if lr.r.Updates >= lr.r.MinUpdates {
		s.bg.Go(func(context.Context) { s.aggregate(lr) })
	}
	return nil
}

// commit anchors an update's or an aggregate's commitment, returning its kv-store key ("" when
// anchoring is off or Calimero cannot be reached: the round goes on and the report lists only
// real anchors).
func (s *Service) commit(ctx context.Context, c *calimero.Commitment) string {
	if !s.deps.Anchoring.On() {
		return ""
	}
	return s.deps.Anchoring.Commit(ctx, c)
}
