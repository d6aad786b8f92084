package rounds

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/node/internal/failpoint"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/store"
)

// aggregate folds the accepted updates of a round, publishes the result as a new version of the
// base model and writes the report. It runs once per round; submissions that arrive meanwhile
// are refused as late.
func (s *Service) aggregate(lr *liveRound) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	switch lr.r.State {
	case announce.RoundOpen:
		lr.r.State = announce.RoundAggregating
		if err := s.save(lr, nil); err != nil {
			s.log.Error("save round", "round", lr.r.ID, "err", err)
			return
		}
	case announce.RoundAggregating: // resumed after a restart
	default:
		return
	}
	rep, err := s.runAggregation(lr)
	if err != nil {
		if s.bg.Context().Err() != nil {
			return // shutting down: the round stays "aggregating" and resumes on restart
		}
		var refused *floorRefusal
		if errors.As(err, &refused) {
			s.failWithReport(lr, fmt.Sprintf("aggregation failed: %v", err), refused.rep)
			return
		}
		s.fail(lr, fmt.Sprintf("aggregation failed: %v", err))
		return
	}
	newID, _ := parseModelID(rep.NewModel)
	lr.r.State, lr.r.NewModel = announce.RoundDone, newID[:]
	if err := s.save(lr, func(tx *store.Tx) error { return tx.Put(store.ReportKey(lr.r.ID), rep) }); err != nil {
		s.log.Error("save round report", "round", lr.r.ID, "err", err)
		return
	}
	s.cfg.Metrics.Aggregated(rep.Metrics)
	os.RemoveAll(filepath.Join(s.cfg.RoundsDir, lr.r.ID)) // the aggregate is published; the report keeps the hashes
	s.end(lr)
	s.log.Info("round done", "round", lr.r.ID, "new_model", rep.NewModel, "accepted", lr.r.Updates, "metrics", rep.Metrics)
}

// runAggregation does the work of aggregate. The caller holds lr.mu.
func (s *Service) runAggregation(lr *liveRound) (*store.ReportRecord, error) {
	r := &lr.r
	began := time.Now()
	var recs []updateRecord
	err := s.deps.Store.Scan(store.UpdatePrefix(r.ID), func(_ store.Key, decode func(any) error) error {
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
	// Empty lists, not missing ones: the API answers [] (and the stored CBOR is as before).
	rep := &store.ReportRecord{
		RoundID: r.ID, BaseModel: hex.EncodeToString(r.Model), Rule: r.Rule, Participants: []store.ParticipantRecord{},
		Anchors: []string{}, Metrics: map[string]float64{}, Timings: map[string]float64{},
	}
	var accepted []updateRecord
	var samples uint64
	var normSum float64
	for _, u := range recs {
		rep.Participants = append(rep.Participants, store.ParticipantRecord{
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
	rep.Timings["collect_seconds"] = began.Sub(time.UnixMilli(r.OpenedAt)).Seconds()
	// The trainers' own evaluation metrics (from their hooks, on their held-out splits: not
	// verified), weighted by samples: "trainer_<name>".
	for k, v := range weightedHookMetrics(accepted) {
		rep.Metrics["trainer_"+k] = v
	}
	rep.Metrics["accepted"] = float64(len(accepted))
	rep.Metrics["rejected"] = float64(len(recs) - len(accepted))
	rep.Metrics["samples"] = float64(samples)
	rep.Metrics["mean_norm"] = normSum / float64(len(accepted))
	var (
		result *fl.File
		sum    [32]byte
		rec    *catalog.Record
	)
	if r.NewModel == nil {
		if result, sum, rec, err = s.publishAggregate(lr, accepted, samples, rep); err != nil {
			if errors.Is(err, errEvalFloor) {
				return nil, &floorRefusal{err: err, rep: rep}
			}
			return nil, err
		}
	} else {
		// A restart after the aggregate was published (and recorded): report on that version
		// instead of publishing a second one.
		if rec, err = s.deps.Catalog.Get(content.ModelID(r.NewModel)); err != nil {
			return nil, fmt.Errorf("the published aggregate: %w", err)
		}
		plain, err := s.deps.Models.Plaintext(rec.ID)
		if err != nil {
			return nil, fmt.Errorf("the published aggregate: %w", err)
		}
		sum = sha256.Sum256(plain)
		if result, err = fl.Parse(plain); err != nil {
			return nil, err
		}
	}
	rep.AggregateSHA256 = hex.EncodeToString(sum[:])
	rep.NewModel = hex.EncodeToString(rec.ID[:])
	if s.deps.Anchoring.Known(rec.ID) == calimero.StateVerified {
		rep.Anchors = append(rep.Anchors, calimero.AnchorKey(rec.ID))
	}
	hashes := [][]byte{sum[:], rec.ID[:]}
	for _, u := range accepted {
		if len(hashes) < 64 {
			hashes = append(hashes, u.SHA256)
		}
	}
	if a := s.commit(s.bg.Context(), &calimero.Commitment{Kind: calimero.KindAggregate, Round: r.ID, Model: r.Model, Hashes: hashes, Samples: samples}); a != "" {
		rep.Anchors = append(rep.Anchors, a)
	}
	if _, scored := rep.Metrics["accuracy"]; !scored { // after a restart: the published version
		if _, err := s.evaluate(lr.base, result, rep.Metrics); err != nil {
			s.log.Warn("evaluate the aggregate", "round", r.ID, "err", err)
		}
	}
	rep.Timings["total_seconds"] = time.Since(time.UnixMilli(r.OpenedAt)).Seconds()
	return rep, nil
}

// publishAggregate computes the aggregate, publishes it as the next version of the round's base
// model and records the new ModelID in the round at once, so a restart never publishes twice.
// The caller holds lr.mu.
func (s *Service) publishAggregate(lr *liveRound, accepted []updateRecord, samples uint64, rep *store.ReportRecord) (*fl.File, [32]byte, *catalog.Record, error) {
	r := &lr.r
	var sum [32]byte
	began := time.Now()
	// A rule that folds (FedAvg) folded each update in as it was accepted (after a restart,
	// streamed back from its file): the base and the sums are all the memory it needs (2 × the
	// model; BENCHMARKS.md). The other rules need every update at once, coordinate by coordinate.
	var result *fl.File
	var err error
	if lr.sums != nil {
		result, err = lr.sums.Result()
		lr.sums = nil
	} else {
		result, err = s.aggregateFromDisk(lr, accepted)
	}
	if err != nil {
		return nil, sum, nil, err
	}
	result, optState, err := s.serverStep(r, lr.base, result, rep.Metrics)
	if err != nil {
		return nil, sum, nil, err
	}
	if err := s.evalFloor(lr.base, result, rep.Metrics); err != nil {
		return nil, sum, nil, err
	}
	result.Metadata = map[string]string{"califusion.round": r.ID, "califusion.rule": r.Rule, "samples": fmt.Sprint(samples)}
	if r.Strategy != "" {
		result.Metadata["califusion.strategy"] = r.Strategy
	}
	path := filepath.Join(s.cfg.RoundsDir, r.ID, "aggregate.safetensors")
	if sum, err = writeSafetensors(path, result); err != nil {
		return nil, sum, nil, err
	}
	rep.Timings["aggregate_seconds"] = time.Since(began).Seconds()

	pubStart := time.Now()
	baseID := content.ModelID(r.Model)
	baseRec, err := s.deps.Catalog.Get(baseID)
	if err != nil {
		return nil, sum, nil, err
	}
	rec, err := s.deps.Publisher.PublishVersion(s.bg.Context(), path, baseRec.Manifest.Name,
		fmt.Sprintf("%s of %d updates (%d samples) in round %s", r.Rule, len(accepted), samples, r.ID), baseID)
	if err != nil {
		return nil, sum, nil, fmt.Errorf("publish the aggregate: %w", err)
	}
	// In a threshold lineage the new key is split across the coordinators and only held in
	// memory here since publishing: wipe it now (a round on the version collects it again).
	s.deps.Keyring.Release(rec.ID)
	s.keepOptState(r.ID, r.Model, rec.ID[:], lr.base, optState)
	r.NewModel = rec.ID[:]
	if err := s.save(lr, nil); err != nil {
		return nil, sum, nil, err
	}
	failpoint.Crash("aggregate-published") // tests kill the coordinator here: published, not yet reported
	rep.Timings["publish_seconds"] = time.Since(pubStart).Seconds()
	return result, sum, rec, nil
}

// newAggregator starts an aggregation of round r's updates by its rule, each update weighing at
// most the round's per-trainer sample ceiling.
func newAggregator(r *announce.Round, base *fl.File) (fl.Aggregator, error) {
	return fl.NewAggregator(r.Rule, base, fl.Options{MaxWeight: r.SampleCeiling()})
}

// aggregateFromDisk reads every accepted update of a round back from disk into a fresh
// aggregator of its rule and returns the result. The caller holds lr.mu.
func (s *Service) aggregateFromDisk(lr *liveRound, accepted []updateRecord) (*fl.File, error) {
	a, err := newAggregator(&lr.r, lr.base)
	if err != nil {
		return nil, err
	}
	for _, u := range accepted {
		f, err := s.readUpdate(lr.r.ID, u)
		if err != nil {
			return nil, err
		}
		if err := a.Add(f, u.Samples); err != nil {
			return nil, fmt.Errorf("the update of %s: %w", u.Trainer, err)
		}
	}
	return a.Result()
}

// readUpdate loads an accepted update from disk and checks it is the one that was accepted.
func (s *Service) readUpdate(round string, u updateRecord) (*fl.File, error) {
	raw, err := os.ReadFile(s.updatePath(round, u.Trainer))
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
func (s *Service) foldUpdate(avg fl.Folder, round string, u updateRecord) error {
	f, err := os.Open(s.updatePath(round, u.Trainer))
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

// errEvalFloor fails a round whose aggregate scores too far below its base version.
var errEvalFloor = errors.New("the aggregate is not published")

// floorRefusal is an errEvalFloor refusal with the report of the round it refused (its
// participants and both scores): the round fails, and its report says why, with the scores.
type floorRefusal struct {
	err error
	rep *store.ReportRecord
}

func (f *floorRefusal) Error() string { return f.err.Error() }
func (f *floorRefusal) Unwrap() error { return f.err }

// failWithReport fails a round as fail does, and stores rep, saying why, as its report. The
// caller holds lr.mu.
func (s *Service) failWithReport(lr *liveRound, why string, rep *store.ReportRecord) {
	lr.r.State, lr.r.Error = announce.RoundFailed, why
	if len(lr.r.Error) > 1024 {
		lr.r.Error = lr.r.Error[:1024]
	}
	rep.Error = why
	if err := s.save(lr, func(tx *store.Tx) error { return tx.Put(store.ReportKey(lr.r.ID), rep) }); err != nil {
		s.log.Error("save failed round", "round", lr.r.ID, "err", err)
	}
	s.end(lr)
	s.log.Warn("round failed", "round", lr.r.ID, "why", why, "metrics", rep.Metrics)
}

// evalFloor scores the aggregate before it is published, when train.eval_data is set: an
// aggregate whose accuracy is below the base version's by more than train.eval_tolerance is
// refused, so the lineage keeps its previous version (a poisoned round changes nothing).
func (s *Service) evalFloor(base, result *fl.File, metrics map[string]float64) error {
	scored, err := s.evaluate(base, result, metrics)
	if err != nil {
		return fmt.Errorf("%w: train.eval_data cannot be scored: %v", errEvalFloor, err)
	}
	if !scored {
		return nil
	}
	acc, baseAcc, tol := metrics["accuracy"], metrics["base_accuracy"], s.cfg.Train.EvalTolerance
	if acc < baseAcc-tol {
		return fmt.Errorf("%w: its accuracy on train.eval_data is %.4f, below the base version's %.4f by more than train.eval_tolerance %.4g", errEvalFloor, acc, baseAcc, tol)
	}
	return nil
}

// evaluate scores the base and the aggregate on the coordinator's held-out data, if configured
// (it reports whether it did).
func (s *Service) evaluate(base, result *fl.File, metrics map[string]float64) (bool, error) {
	path := s.cfg.Train.EvalData
	if path == "" {
		return false, nil
	}
	d, err := fl.LoadCSV(path, s.cfg.Train.FeatureScale)
	if err != nil {
		return false, fmt.Errorf("load train.eval_data: %w", err)
	}
	metrics["accuracy"] = fl.Accuracy(result, d)
	metrics["base_accuracy"] = fl.Accuracy(base, d)
	return true, nil
}

// weightedHookMetrics is the sample-weighted mean of each metric the accepted updates' hooks
// reported (over the updates that report it).
func weightedHookMetrics(accepted []updateRecord) map[string]float64 {
	sums, weights := map[string]float64{}, map[string]float64{}
	for _, u := range accepted {
		for k, v := range u.Metrics {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			k = strings.TrimPrefix(k, fl.MetricPrefix) // "califusion.metric.accuracy" → "accuracy"
			sums[k] += float64(u.Samples) * v
			weights[k] += float64(u.Samples)
		}
	}
	out := map[string]float64{}
	for k, w := range weights {
		if w > 0 {
			out[k] = sums[k] / w
		}
	}
	return out
}
