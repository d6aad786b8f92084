package rounds

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/node/internal/fsutil"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// trainedUpdate is what a trainer keeps about an update it trained.
type trainedUpdate struct {
	Round     string    `cbor:"1,keyasint"`
	Samples   uint64    `cbor:"2,keyasint"`
	SHA256    []byte    `cbor:"3,keyasint"`
	Seconds   float64   `cbor:"4,keyasint"`
	Hook      string    `cbor:"5,keyasint"`
	At        time.Time `cbor:"6,keyasint"`
	Submitted bool      `cbor:"7,keyasint,omitempty"`
	// SubmittedTo is the round the update was submitted to: Round, or the round that re-opens
	// it after its coordinator went silent (failover.go); "" in records written before it.
	SubmittedTo string `cbor:"8,keyasint,omitempty"`
}

// TrainParams describe a training run for a round.
type TrainParams struct {
	RoundID      string
	Data         string  // training data ("": train.data)
	Hook         string  // builtin or exec ("": train.hook)
	Epochs       int     // built-in trainer (0: train.epochs)
	BatchSize    int     // built-in trainer (0: train.batch_size)
	LearningRate float64 // built-in trainer (0: train.learning_rate)
}

// TrainResult is a trained update, kept for Submit.
type TrainResult struct {
	UpdateID string // hex SHA-256 of the update
	Samples  uint64
	Seconds  float64
}

// SubmitResult is the coordinator's receipt for an accepted update.
type SubmitResult struct {
	Accepted bool
	Norm     float64
	Clipped  bool
	Anchor   string // the update's commitment in Calimero ("" when not anchored)
	// Secure: the round is secure and the coordinator admitted this trainer's join; the
	// dialogue goes on in the background and round_report shows its outcome.
	Secure bool
}

// findRound returns a round from the store, or asks the known coordinators for it (a node that
// joined after the announcement has not heard it yet).
func (s *Service) findRound(ctx context.Context, id string) (*announce.Round, error) {
	if r, err := s.Get(id); err == nil {
		return r, nil
	}
	if s.deps.Host == nil {
		return nil, apierr.Errorf(apierr.NotFound, "round %q is not known here and this node has no network to ask", id)
	}
	// Every coordinator at once (a few at a time), the first valid answer wins: a coordinator
	// that died (presence remembers it for a day) costs nothing when another one answers.
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	found := make(chan *announce.Round, 1)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, c := range s.coordinators() {
		if c == s.cfg.Self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-qctx.Done():
				return
			}
			res, err := updates.Request(qctx, s.deps.Host, c, updates.PurposeRound, &updates.Query{Round: id})
			if err != nil {
				return
			}
			if r, err := announce.DecodeRound(res.Round, c); err == nil && r.ID == id {
				select {
				case found <- r:
					cancel()
				default:
				}
			}
		}()
	}
	wg.Wait()
	select {
	case r := <-found:
		if err := s.remember(r); err != nil {
			return nil, err
		}
		return r, nil
	default:
	}
	return nil, apierr.Errorf(apierr.NotFound, "round %q is not known here and no reachable coordinator runs it", id)
}

func (s *Service) coordinators() []peer.ID {
	if s.deps.Directory == nil {
		return nil
	}
	return s.deps.Directory.Coordinators()
}

// Train runs the training hook on a round's model and keeps the update for Submit. Refusals
// (not a trainer, unknown or closed round, bad parameters, a hook's failure or an update that
// fails verification) are *apierr.Error values; the last has code UpdateRejected with
// apierr.RejectedData.
func (s *Service) Train(ctx context.Context, p TrainParams) (TrainResult, error) {
	var zero TrainResult
	if err := requireRole(s.cfg.IsTrainer, "trainer"); err != nil {
		return zero, err
	}
	r, err := s.findRound(ctx, p.RoundID)
	if err != nil {
		return zero, err
	}
	if r.State != announce.RoundOpen {
		return zero, apierr.Errorf(apierr.Conflict, "round %s is %s: it takes no more updates", r.ID, r.State)
	}
	if err := s.checkEpochCap(r, p); err != nil {
		return zero, err
	}
	rec, err := s.roundModel(ctx, r)
	if err != nil {
		return zero, err
	}
	s.joinTraining(rec.Lineage()) // the round's commitments are anchored there
	plain, err := s.deps.Models.Plaintext(rec.ID)
	if err != nil {
		return zero, err
	}
	defer clear(plain)
	base, err := fl.Parse(plain)
	if err != nil {
		return zero, apierr.Errorf(apierr.InvalidParams, "the round's model is not a safetensors file, so it cannot be trained: %v", err)
	}
	data, hook := p.Data, p.Hook
	if data == "" {
		data = s.cfg.Train.Data
	}
	if hook == "" {
		hook = s.cfg.Train.Hook
	}
	if data == "" {
		return zero, apierr.Errorf(apierr.InvalidParams, "no training data: pass data or set train.data in the config")
	}
	began := time.Now()
	var raw []byte
	var samples uint64
	var logs string
	switch hook {
	case config.HookBuiltin:
		raw, samples, err = s.trainBuiltin(ctx, base, data, r, p)
	case config.HookExec:
		raw, samples, logs, err = s.trainExec(ctx, plain, data, s.hookRoundConfig(r, p))
	default:
		return zero, apierr.Errorf(apierr.InvalidParams, "hook %q is not builtin or exec", hook)
	}
	s.cfg.Metrics.HookRan(hook, time.Since(began))
	if err != nil {
		return zero, err
	}
	seconds := time.Since(began).Seconds()
	// The coordinator checks the update again (with the round's norm bound); checking it here
	// turns a hook's garbage into a clear error before anything is sent.
	upd, err := fl.Parse(raw)
	if err == nil {
		_, err = fl.Check(base, upd, samples, 0)
	}
	if err != nil {
		return zero, &apierr.Error{Code: apierr.UpdateRejected, Message: "the training hook's update fails verification: " + err.Error(), Data: apierr.RejectedData{Reason: fl.Reason(err)}}
	}
	sum := sha256.Sum256(raw)
	id := hex.EncodeToString(sum[:])
	if err := fsutil.WritePrivate(filepath.Join(s.cfg.UpdatesDir, id+".safetensors"), raw); err != nil {
		return zero, err
	}
	if logs != "" { // the hook's captured output, beside its update
		if err := fsutil.WritePrivate(filepath.Join(s.cfg.UpdatesDir, id+".log"), []byte(logs)); err != nil {
			return zero, err
		}
	}
	t := trainedUpdate{Round: r.ID, Samples: samples, SHA256: sum[:], Seconds: seconds, Hook: hook, At: time.Now().UTC()}
	if err := s.deps.Store.Put(store.TrainedKey(id), &t); err != nil {
		return zero, err
	}
	s.log.Info("update trained", "round", r.ID, "update", id, "samples", samples, "seconds", seconds, "hook", hook)
	return TrainResult{UpdateID: id, Samples: samples, Seconds: seconds}, nil
}

// roundModel makes a round's base model ready to train: in the catalog (resolved from the
// network if need be), complete, unlocked (a
// trainer that paid for the lineage gets every later version's key without paying again).
func (s *Service) roundModel(ctx context.Context, r *announce.Round) (*catalog.Record, error) {
	id := content.ModelID(r.Model)
	// A model gossip or catalog sync has not brought yet is asked of the network (Resolve
	// bounds the wait).
	rec, err := s.deps.Catalog.Resolve(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.Errorf(apierr.NotFound, "the round's model %x is not in this node's catalog yet", id[:8])
	}
	if err != nil {
		return nil, err
	}
	// Before anything is fetched, unlocked or trained: only a coordinator the model's lineage
	// authorises may collect updates derived from this node's data.
	if err := s.authorised(r); err != nil {
		return nil, err
	}
	if !s.deps.Models.Complete(rec) {
		if err := s.deps.Models.WaitFetched(ctx, rec); err != nil {
			return nil, err
		}
	}
	if !s.deps.Keyring.Has(id) {
		peerID, _ := peer.Decode(r.Coordinator)
		coords := append([]peer.ID{peerID}, s.coordinators()...)
		err := s.deps.Keys.Claim(ctx, rec, coords)
		var ae *apierr.Error
		if errors.As(err, &ae) && ae.Code == apierr.NotUnlocked {
			return nil, apierr.Errorf(apierr.NotUnlocked, "model %s is not unlocked here: pay for it with `califusiond model unlock %s` first", hex.EncodeToString(id[:]), hex.EncodeToString(id[:]))
		}
		if err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// seedFor derives a trainer's deterministic shuffling seed for a round.
func seedFor(round string, p peer.ID) uint64 {
	h := fnv.New64a()
	h.Write([]byte(round))
	h.Write([]byte(p))
	return h.Sum64()
}

// trainBuiltin runs the built-in Go trainer on a CSV, within train.timeout (as an exec hook).
// It adds the round's FedProx term (prox_mu) to the loss and ignores the round's free-form
// config (an exec hook's business).
func (s *Service) trainBuiltin(ctx context.Context, base *fl.File, data string, r *announce.Round, p TrainParams) ([]byte, uint64, error) {
	cfg := s.cfg.Train
	epochs, batch, lr := cfg.Epochs, cfg.BatchSize, cfg.LearningRate
	roundHyperparameters(r, &epochs, &batch, &lr)
	if p.Epochs > 0 {
		epochs = p.Epochs
	}
	if p.BatchSize > 0 {
		batch = p.BatchSize
	}
	if p.LearningRate > 0 {
		lr = p.LearningRate
	}
	d, err := fl.LoadCSV(data, cfg.FeatureScale)
	if err != nil {
		return nil, 0, apierr.Errorf(apierr.InvalidParams, "training data: %v", err)
	}
	tctx, cancel := s.builtinContext(ctx)
	defer cancel()
	upd, err := fl.TrainProxContext(tctx, base, d, epochs, batch, lr, seedFor(r.ID, s.cfg.Self), r.ProxMu)
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return nil, 0, apierr.Errorf(apierr.Internal, "the built-in trainer ran past train.timeout (%v) on %d epochs: raise train.timeout or train fewer epochs", s.builtinTimeout(), epochs)
	case ctx.Err() != nil:
		return nil, 0, apierr.Errorf(apierr.Unavailable, "training stopped: %v", ctx.Err())
	}
	if err != nil {
		return nil, 0, apierr.Errorf(apierr.InvalidParams, "built-in trainer: %v", err)
	}
	raw, err := upd.Encode()
	return raw, uint64(len(d.X)), err
}

// trainExec runs the configured command with the decrypted model (and the round's {config}) in
// private scratch files that are removed when the hook ends.
func (s *Service) trainExec(ctx context.Context, model []byte, data string, rc fl.RoundConfig) (update []byte, samples uint64, logs string, err error) {
	round := rc.RoundID
	cfg := s.cfg.Train
	if len(cfg.Command) == 0 {
		return nil, 0, "", apierr.Errorf(apierr.InvalidParams, "no exec hook: set train.command in the config")
	}
	// A scratch folder per run (0700), so concurrent runs never share files.
	if err := os.MkdirAll(s.cfg.TrainDir, 0o700); err != nil {
		return nil, 0, "", err
	}
	scratch, err := os.MkdirTemp(s.cfg.TrainDir, round+"-*")
	if err != nil {
		return nil, 0, "", err
	}
	defer os.RemoveAll(scratch)
	modelPath := filepath.Join(scratch, "model.safetensors")
	outPath := filepath.Join(scratch, "update.safetensors")
	if err := fsutil.WritePrivate(modelPath, model); err != nil {
		return nil, 0, "", err
	}
	res, err := fl.Hook{Command: cfg.Command, Timeout: cfg.Timeout.Duration, Round: rc}.Run(ctx, modelPath, data, outPath)
	if err != nil {
		if res != nil {
			logs = res.Logs
		}
		return nil, 0, logs, &apierr.Error{Code: apierr.Internal, Message: err.Error(), Data: map[string]string{"logs": logs}}
	}
	return res.Raw, res.Samples, res.Logs, nil
}

// Submit sends a trained update to its round's coordinator. The coordinator's refusal keeps its
// code (an update_rejected one with apierr.RejectedData); an unreachable coordinator is
// apierr.Unavailable.
func (s *Service) Submit(ctx context.Context, roundID, updateID string) (SubmitResult, error) {
	var zero SubmitResult
	var t trainedUpdate
	if err := s.deps.Store.Get(store.TrainedKey(updateID), &t); err != nil {
		return zero, apierr.Errorf(apierr.NotFound, "update %q is not known: run train_run first", updateID)
	}
	r, err := s.findRound(ctx, roundID)
	if err != nil {
		return zero, err
	}
	// An update trained for a round is submitted to it, or to the round that re-opens it after
	// its coordinator went silent (same base model and parameters: failover.go).
	if t.Round != roundID && t.Round != r.Reopens {
		return zero, apierr.Errorf(apierr.InvalidParams, "update %s was trained for round %s, not %s", updateID, t.Round, roundID)
	}
	if err := s.authorised(r); err != nil {
		if errors.Is(err, errRoundModelUnknown) {
			return zero, apierr.Errorf(apierr.NotFound, "%v", err)
		}
		return zero, err
	}
	coord, err := peer.Decode(r.Coordinator)
	if err != nil {
		return zero, err
	}
	f, err := os.Open(filepath.Join(s.cfg.UpdatesDir, updateID+".safetensors"))
	if err != nil {
		return zero, err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return zero, err
	}
	if !bytes.Equal(h.Sum(nil), t.SHA256) {
		return zero, apierr.Errorf(apierr.Integrity, "the stored update %s no longer matches its hash: train again", updateID)
	}
	if r.Secure {
		return s.submitSecure(ctx, r, &t, updateID, coord)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return zero, err
	}
	if s.deps.Host == nil {
		return zero, &apierr.Error{Code: apierr.Unavailable, Message: "the round's coordinator " + coord.String() + " could not be reached", Data: "this node has no network"}
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	// The header goes first; the body is streamed from the file only if the coordinator says go.
	res, err := updates.Submit(sctx, s.deps.Host, coord, r.ID, t.Samples, t.SHA256, uint64(size), f)
	var refusal *updates.Error
	switch {
	case errors.As(err, &refusal) && refusal.Code == apierr.UpdateRejected:
		// Judged and recorded: the coordinator takes no other update from this node for the
		// round, and tells it its verdict in the report.
		t.Submitted, t.SubmittedTo = true, r.ID
		if err := s.deps.Store.Put(store.TrainedKey(updateID), &t); err != nil {
			return zero, err
		}
		return zero, &apierr.Error{Code: refusal.Code, Message: refusal.Message, Data: apierr.RejectedData{Reason: refusal.Reason, Norm: refusal.Norm}}
	case errors.As(err, &refusal):
		return zero, &apierr.Error{Code: refusal.Code, Message: refusal.Message}
	case err != nil:
		return zero, &apierr.Error{Code: apierr.Unavailable, Message: "the round's coordinator " + coord.String() + " could not be reached", Data: err.Error()}
	}
	t.Submitted, t.SubmittedTo = true, r.ID
	if err := s.deps.Store.Put(store.TrainedKey(updateID), &t); err != nil {
		return zero, err
	}
	return SubmitResult{Accepted: true, Norm: res.Norm, Clipped: res.Clipped, Anchor: res.Anchor}, nil
}

// roundHyperparameters overrides a trainer's own settings with those the round sets (train_run's
// flags override both).
func roundHyperparameters(r *announce.Round, epochs, batch *int, lr *float64) {
	if r.Epochs > 0 {
		*epochs = r.Epochs
	}
	if r.BatchSize > 0 {
		*batch = r.BatchSize
	}
	if r.LearningRate > 0 {
		*lr = r.LearningRate
	}
}
