package node

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
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Datadir folders of a trainer: updates it trained, and the scratch space of exec hooks (which
// holds a decrypted model only while the hook runs).
const (
	UpdatesDir = "updates"
	TrainDir   = "train"
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
}

// findRound returns a round from the store, or asks the known coordinators for it (a node that
// joined after the announcement has not heard it yet).
func (rs *rounds) findRound(ctx context.Context, id string) (*announce.Round, error) {
	if r, err := rs.get(id); err == nil {
		return r, nil
	}
	for _, c := range rs.n.coordinators() {
		if c == rs.n.host.ID() {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := updates.Request(qctx, rs.n.host, c, updates.PurposeRound, &updates.Query{Round: id})
		cancel()
		if err != nil {
			continue
		}
		r, err := announce.DecodeRound(res.Round, c)
		if err != nil || r.ID != id {
			continue
		}
		if err := rs.remember(r); err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, adminrpc.Errorf(adminrpc.CodeNotFound, "round %q is not known here and no reachable coordinator runs it", id)
}

// waitFetched fetches a model (or joins its running fetch) and waits until it is complete.
func (n *Node) waitFetched(ctx context.Context, r *record) error {
	job, err := n.models.startFetch(r.ID, "")
	if err != nil {
		return err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := n.jobs.Status(job)
		switch {
		case err != nil:
			return err
		case st.State == jobs.Done:
			return nil
		case st.State == jobs.Failed:
			return &adminrpc.Error{Code: adminrpc.CodeUnavailable, Message: "fetching the round's model failed", Data: st.Error}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// trainRun runs the training hook on a round's model and keeps the update for update_submit.
func (rs *rounds) trainRun(ctx context.Context, p adminrpc.TrainRunParams) (adminrpc.TrainRunResult, error) {
	n := rs.n
	var zero adminrpc.TrainRunResult
	if err := n.requireRole(config.RoleTrainer); err != nil {
		return zero, err
	}
	r, err := rs.findRound(ctx, p.RoundID)
	if err != nil {
		return zero, err
	}
	if r.State != announce.RoundOpen {
		return zero, adminrpc.Errorf(adminrpc.CodeConflict, "round %s is %s: it takes no more updates", r.ID, r.State)
	}
	rec, err := rs.roundModel(ctx, r)
	if err != nil {
		return zero, err
	}
	plain, err := n.models.plaintext(rec.ID)
	if err != nil {
		return zero, err
	}
	defer clear(plain)
	base, err := fl.Parse(plain)
	if err != nil {
		return zero, adminrpc.Errorf(adminrpc.CodeInvalidParams, "the round's model is not a safetensors file, so it cannot be trained: %v", err)
	}
	data, hook := p.Data, p.Hook
	if data == "" {
		data = n.cfg.Train.Data
	}
	if hook == "" {
		hook = n.cfg.Train.Hook
	}
	if data == "" {
		return zero, adminrpc.Errorf(adminrpc.CodeInvalidParams, "no training data: pass data or set train.data in the config")
	}
	began := time.Now()
	var raw []byte
	var samples uint64
	var logs string
	switch hook {
	case config.HookBuiltin:
		raw, samples, err = rs.trainBuiltin(base, data, r.ID, p)
	case config.HookExec:
		raw, samples, logs, err = rs.trainExec(ctx, plain, data, r.ID)
	default:
		return zero, adminrpc.Errorf(adminrpc.CodeInvalidParams, "hook %q is not builtin or exec", hook)
	}
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
		return zero, &adminrpc.Error{Code: adminrpc.CodeUpdateRejected, Message: "the training hook's update fails verification: " + err.Error(), Data: adminrpc.RejectedData{Reason: fl.Reason(err)}}
	}
	sum := sha256.Sum256(raw)
	id := hex.EncodeToString(sum[:])
	if err := writePrivate(n.dir.Join(UpdatesDir, id+".safetensors"), raw); err != nil {
		return zero, err
	}
	if logs != "" { // the hook's captured output, beside its update
		if err := writePrivate(n.dir.Join(UpdatesDir, id+".log"), []byte(logs)); err != nil {
			return zero, err
		}
	}
	t := trainedUpdate{Round: r.ID, Samples: samples, SHA256: sum[:], Seconds: seconds, Hook: hook, At: time.Now().UTC()}
	if err := n.store.Put(store.TrainedKey(id), &t); err != nil {
		return zero, err
	}
	rs.log.Info("update trained", "round", r.ID, "update", id, "samples", samples, "seconds", seconds, "hook", hook)
	return adminrpc.TrainRunResult{UpdateID: id, Samples: samples, Seconds: seconds}, nil
}

// roundModel makes a round's base model ready to train: in the catalog, complete, unlocked (a
// trainer that paid for the lineage gets every later version's key without paying again).
func (rs *rounds) roundModel(ctx context.Context, r *announce.Round) (*record, error) {
	n := rs.n
	id := content.ModelID(r.Model)
	var rec *record
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		var err error
		if rec, err = n.models.get(id); err == nil {
			break
		}
		select {
		case <-wctx.Done():
			return nil, adminrpc.Errorf(adminrpc.CodeNotFound, "the round's model %x is not in this node's catalog yet", id[:8])
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Before anything is fetched, unlocked or trained: only a coordinator the model's lineage
	// authorises may collect updates derived from this node's data.
	if err := rs.authorised(r); err != nil {
		return nil, err
	}
	if !n.models.complete(rec) {
		if err := n.waitFetched(ctx, rec); err != nil {
			return nil, err
		}
	}
	if _, err := n.models.keys.get(id); err != nil {
		peerID, _ := peer.Decode(r.Coordinator)
		coords := append([]peer.ID{peerID}, n.coordinators()...)
		err := n.requestKey(ctx, rec, coords, &keys.Unlock{Model: id[:]})
		var ae *adminrpc.Error
		if errors.As(err, &ae) && ae.Code == adminrpc.CodeNotUnlocked {
			return nil, adminrpc.Errorf(adminrpc.CodeNotUnlocked, "model %s is not unlocked here: pay for it with `califusiond model unlock %s` first", hex.EncodeToString(id[:]), hex.EncodeToString(id[:]))
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

// trainBuiltin runs the built-in Go trainer on a CSV.
func (rs *rounds) trainBuiltin(base *fl.File, data, round string, p adminrpc.TrainRunParams) ([]byte, uint64, error) {
	cfg := rs.n.cfg.Train
	epochs, batch, lr := cfg.Epochs, cfg.BatchSize, cfg.LearningRate
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
		return nil, 0, adminrpc.Errorf(adminrpc.CodeInvalidParams, "training data: %v", err)
	}
	upd, err := fl.Train(base, d, epochs, batch, lr, seedFor(round, rs.n.host.ID()))
	if err != nil {
		return nil, 0, adminrpc.Errorf(adminrpc.CodeInvalidParams, "built-in trainer: %v", err)
	}
	raw, err := upd.Encode()
	return raw, uint64(len(d.X)), err
}

// trainExec runs the configured command with the decrypted model in a private scratch file that
// is removed when the hook ends.
func (rs *rounds) trainExec(ctx context.Context, model []byte, data, round string) (update []byte, samples uint64, logs string, err error) {
	cfg := rs.n.cfg.Train
	if len(cfg.Command) == 0 {
		return nil, 0, "", adminrpc.Errorf(adminrpc.CodeInvalidParams, "no exec hook: set train.command in the config")
	}
	// A scratch folder per run (0700), so concurrent runs never share files.
	if err := os.MkdirAll(rs.n.dir.Join(TrainDir), 0o700); err != nil {
		return nil, 0, "", err
	}
	scratch, err := os.MkdirTemp(rs.n.dir.Join(TrainDir), round+"-*")
	if err != nil {
		return nil, 0, "", err
	}
	defer os.RemoveAll(scratch)
	modelPath := filepath.Join(scratch, "model.safetensors")
	outPath := filepath.Join(scratch, "update.safetensors")
	if err := writePrivate(modelPath, model); err != nil {
		return nil, 0, "", err
	}
	res, err := fl.Hook{Command: cfg.Command, Timeout: cfg.Timeout.Duration}.Run(ctx, modelPath, data, outPath)
	if err != nil {
		if res != nil {
			logs = res.Logs
		}
		return nil, 0, logs, &adminrpc.Error{Code: adminrpc.CodeInternal, Message: err.Error(), Data: map[string]string{"logs": logs}}
	}
	return res.Raw, res.Samples, res.Logs, nil
}

// submit sends a trained update to its round's coordinator.
func (rs *rounds) submit(ctx context.Context, p adminrpc.UpdateSubmitParams) (adminrpc.UpdateSubmitResult, error) {
	n := rs.n
	var zero adminrpc.UpdateSubmitResult
	var t trainedUpdate
	if err := n.store.Get(store.TrainedKey(p.UpdateID), &t); err != nil {
		return zero, adminrpc.Errorf(adminrpc.CodeNotFound, "update %q is not known: run train_run first", p.UpdateID)
	}
	if t.Round != p.RoundID {
		return zero, adminrpc.Errorf(adminrpc.CodeInvalidParams, "update %s was trained for round %s, not %s", p.UpdateID, t.Round, p.RoundID)
	}
	r, err := rs.findRound(ctx, p.RoundID)
	if err != nil {
		return zero, err
	}
	if err := rs.authorised(r); err != nil {
		if errors.Is(err, errRoundModelUnknown) {
			return zero, adminrpc.Errorf(adminrpc.CodeNotFound, "%v", err)
		}
		return zero, err
	}
	coord, err := peer.Decode(r.Coordinator)
	if err != nil {
		return zero, err
	}
	f, err := os.Open(n.dir.Join(UpdatesDir, p.UpdateID+".safetensors"))
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
		return zero, adminrpc.Errorf(adminrpc.CodeIntegrity, "the stored update %s no longer matches its hash: train again", p.UpdateID)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return zero, err
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	// The header goes first; the body is streamed from the file only if the coordinator says go.
	res, err := updates.Submit(sctx, n.host, coord, r.ID, t.Samples, t.SHA256, uint64(size), f)
	var refusal *updates.Error
	switch {
	case errors.As(err, &refusal) && refusal.Code == adminrpc.CodeUpdateRejected:
		return zero, &adminrpc.Error{Code: refusal.Code, Message: refusal.Message, Data: adminrpc.RejectedData{Reason: refusal.Reason, Norm: refusal.Norm}}
	case errors.As(err, &refusal):
		return zero, &adminrpc.Error{Code: refusal.Code, Message: refusal.Message}
	case err != nil:
		return zero, &adminrpc.Error{Code: adminrpc.CodeUnavailable, Message: "the round's coordinator " + coord.String() + " could not be reached", Data: err.Error()}
	}
	t.Submitted = true
	if err := n.store.Put(store.TrainedKey(p.UpdateID), &t); err != nil {
		return zero, err
	}
	return adminrpc.UpdateSubmitResult{Accepted: true, Norm: res.Norm, Clipped: res.Clipped, Anchor: res.Anchor}, nil
}
