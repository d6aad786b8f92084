package rounds

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/node/internal/failpoint"
	"github.com/califusion/califusion/node/secagg"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A trainer's part in secure rounds: update_submit computes the delta, joins the round with its
// SecAgg keys and returns once the coordinator admitted it; the rest of the dialogue runs in the
// background and its outcome is kept (store.SecureKey) for round_report.

// Where a trainer stands in a secure round.
const (
	secJoined      = "joined"      // admitted; the dialogue runs
	secContributed = "contributed" // its masked input is in the aggregate
	secDropped     = "dropped"     // the round went on without it
	secFailed      = "failed"      // the round failed, or this trainer refused the coordinator
)

// secureTrainer is what a trainer keeps about its part in a secure round.
type secureTrainer struct {
	Round        string    `cbor:"1,keyasint"`
	Update       string    `cbor:"2,keyasint"` // the update ID it submitted
	State        string    `cbor:"3,keyasint"` // secJoined, secContributed, secDropped or secFailed
	NewModel     []byte    `cbor:"4,keyasint,omitempty"`
	Contributors []string  `cbor:"5,keyasint,omitempty"`
	Dropouts     []string  `cbor:"6,keyasint,omitempty"`
	Error        string    `cbor:"7,keyasint,omitempty"`
	At           time.Time `cbor:"8,keyasint"`
}

// secureJoinTimeout bounds the wait for the coordinator's answer to a join.
const secureJoinTimeout = 2 * time.Minute

// trainerKeepalive is how often a trainer waiting on its coordinator sends a keepalive (a
// variable: tests shorten it).
var trainerKeepalive = updates.KeepaliveEvery

// afterSharesSent, when set by a test, runs after the trainer sent its shares; returning true
// ends the dialogue there (as the failpoint "secagg-shares-sent" ends the process).
var afterSharesSent func(self peer.ID) bool

// submitSecure joins a secure round with the update trained for it: delta = trained − base,
// scaled to clip_norm when the round sets one.
func (s *Service) submitSecure(ctx context.Context, r *announce.Round, t *trainedUpdate, updateID string, coord peer.ID) (SubmitResult, error) {
	var zero SubmitResult
	if s.deps.Host == nil {
		return zero, &apierr.Error{Code: apierr.Unavailable, Message: "the round's coordinator " + coord.String() + " could not be reached", Data: "this node has no network"}
	}
	if has, _ := s.deps.Store.Has(store.SecureKey(r.ID)); has {
		return zero, apierr.Errorf(apierr.Conflict, "duplicate submission: this node already joined secure round %s", r.ID)
	}
	delta, err := s.secureDelta(r, updateID)
	if err != nil {
		return zero, err
	}
	client, err := secagg.NewClient(*r.SecAgg, []byte(r.ID), rand.Reader)
	if err != nil {
		return zero, apierr.Errorf(apierr.InvalidParams, "round %s's secure aggregation parameters: %v", r.ID, err)
	}
	join, err := updates.SignJoin(s.deps.Host.Peerstore().PrivKey(s.deps.Host.ID()), &updates.JoinStatement{
		Round: r.ID, Trainer: s.cfg.Self.String(), Coordinator: coord.String(), Keys: client.Keys(),
	})
	if err != nil {
		return zero, err
	}
	unreachable := func(err error) error {
		return &apierr.Error{Code: apierr.Unavailable, Message: "the round's coordinator " + coord.String() + " could not be reached", Data: err.Error()}
	}
	// The session outlives this call: it is the service's, not the request's.
	dctx, cancel := context.WithTimeout(ctx, secureJoinTimeout)
	defer cancel()
	ks, err := kex.Dial(dctx, s.deps.Host, coord, updates.PurposeSecAgg)
	if err != nil {
		return zero, unreachable(err)
	}
	c := updates.NewConn(ks)
	c.KeepaliveEvery = trainerKeepalive
	if err := c.Send(dctx, &updates.Up{Join: join}); err != nil {
		ks.Close()
		return zero, unreachable(err)
	}
	d, err := c.RecvDown(dctx, updates.MaxReceipt)
	switch {
	case err != nil:
		ks.Close()
		return zero, unreachable(err)
	case d.Receipt == nil:
		ks.Close()
		return zero, apierr.Errorf(apierr.Unavailable, "the coordinator %s answered the join with neither admission nor refusal", coord)
	case d.Receipt.Code != 0:
		ks.Close()
		return zero, &apierr.Error{Code: d.Receipt.Code, Message: d.Receipt.Message}
	case !d.Receipt.Go:
		ks.Close()
		return zero, apierr.Errorf(apierr.Unavailable, "the coordinator %s did not admit the join", coord)
	}
	rec := secureTrainer{Round: r.ID, Update: updateID, State: secJoined, At: time.Now().UTC()}
	t.Submitted, t.SubmittedTo = true, r.ID
	err = s.deps.Store.Update(func(tx *store.Tx) error {
		if err := tx.Put(store.SecureKey(r.ID), &rec); err != nil {
			return err
		}
		return tx.Put(store.TrainedKey(updateID), t)
	})
	if err != nil {
		ks.Close()
		return zero, err
	}
	s.log.Info("joined secure round", "round", r.ID, "coordinator", coord, "update", updateID)
	round := *r
	s.bg.Go(func(ctx context.Context) {
		defer ks.Close()
		defer clear(delta)
		s.secureDialogue(ctx, c, &round, coord, client, delta, t.Samples)
	})
	return SubmitResult{Accepted: true, Secure: true}, nil
}

// secureDelta reads a trained update and its round's base model and returns the delta vector.
func (s *Service) secureDelta(r *announce.Round, updateID string) ([]float32, error) {
	raw, err := os.ReadFile(filepath.Join(s.cfg.UpdatesDir, updateID+".safetensors"))
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	trained, err := fl.Parse(raw)
	if err != nil {
		return nil, apierr.Errorf(apierr.Integrity, "the stored update %s: %v", updateID, err)
	}
	plain, err := s.deps.Models.Plaintext([32]byte(r.Model))
	if err != nil {
		return nil, apierr.Errorf(apierr.NotUnlocked, "the round's base model cannot be read, so the update's delta cannot be computed: %v", err)
	}
	defer clear(plain)
	base, err := fl.Parse(plain)
	if err != nil {
		return nil, apierr.Errorf(apierr.InvalidParams, "the round's model is not a safetensors file: %v", err)
	}
	delta, err := flatDelta(base, trained)
	if err != nil {
		return nil, &apierr.Error{Code: apierr.UpdateRejected, Message: "update rejected: " + err.Error(), Data: apierr.RejectedData{Reason: "tensors"}}
	}
	if r.ClipNorm > 0 { // a secure round clips on the trainer: clip_mode scale
		scaleTo(delta, r.ClipNorm)
	}
	return delta, nil
}

// errRefused ends a dialogue the coordinator refused or failed; its text is the coordinator's.
var errRefused = errors.New("the coordinator ended the secure round's dialogue")

// secureDialogue runs the rest of a secure round after the join and records how it ended.
func (s *Service) secureDialogue(ctx context.Context, c *updates.Conn, r *announce.Round, coord peer.ID, client *secagg.Client, delta []float32, weight uint64) {
	out, err := s.runDialogue(ctx, c, r, coord, client, delta, weight)
	rec := secureTrainer{Round: r.ID, State: secFailed, At: time.Now().UTC()}
	if old := (secureTrainer{}); s.deps.Store.Get(store.SecureKey(r.ID), &old) == nil {
		rec.Update = old.Update
	}
	switch {
	case out != nil:
		rec.NewModel, rec.Contributors, rec.Dropouts, rec.Error = out.NewModel, out.Contributors, out.Dropouts, out.Error
		switch {
		case out.Contributed:
			rec.State = secContributed
		case out.Error == "":
			rec.State = secDropped
		}
	case ctx.Err() != nil:
		return // shutting down: the record stays "joined"
	default:
		rec.Error = err.Error()
	}
	if err != nil {
		s.log.Warn("secure round dialogue ended", "round", r.ID, "err", err)
	}
	if perr := s.deps.Store.Put(store.SecureKey(r.ID), &rec); perr != nil {
		s.log.Error("record secure round outcome", "round", r.ID, "err", perr)
	}
	s.log.Info("secure round ended", "round", r.ID, "state", rec.State, "new_model", hex.EncodeToString(rec.NewModel), "err", rec.Error)
}

// next waits for the coordinator's next message: an early outcome or a refusal ends the
// dialogue (as an outcome, or errRefused).
func next(ctx context.Context, c *updates.Conn, limit int) (*updates.Down, *updates.Outcome, error) {
	d, err := c.WaitDown(ctx, limit)
	switch {
	case err != nil:
		return nil, nil, err
	case d.Outcome != nil:
		return nil, d.Outcome, nil
	case d.Receipt != nil && d.Receipt.Code != 0:
		return nil, nil, fmt.Errorf("%w: %s", errRefused, d.Receipt.Message)
	}
	return d, nil, nil
}

// runDialogue is the trainer's side of the SecAgg+ phases. It returns the coordinator's
// outcome, or why it has none.
func (s *Service) runDialogue(ctx context.Context, c *updates.Conn, r *announce.Round, coord peer.ID, client *secagg.Client, delta []float32, weight uint64) (*updates.Outcome, error) {
	d, out, err := next(ctx, c, updates.MaxRoster)
	if d == nil {
		return out, err
	}
	if d.Roster == nil {
		return nil, fmt.Errorf("the coordinator sent no roster")
	}
	keys, self, err := s.checkRoster(d.Roster, r, coord, client, len(delta))
	if err != nil {
		return nil, fmt.Errorf("refused the coordinator's roster: %w", err)
	}
	sealed, err := client.ShareKeys(keys, self)
	if err != nil {
		return nil, fmt.Errorf("share keys: %w", err)
	}
	if err := c.Send(ctx, &updates.Up{Shares: &updates.Shares{Sealed: sealed}}); err != nil {
		return nil, err
	}
	failpoint.Crash("secagg-shares-sent") // tests kill the trainer here: shares sent, no input
	if afterSharesSent != nil && afterSharesSent(s.cfg.Self) {
		return nil, errors.New("stopped after sending shares (test hook)")
	}
	if d, out, err = next(ctx, c, updates.MaxShares); d == nil {
		return out, err
	}
	if d.Shares == nil {
		return nil, fmt.Errorf("the coordinator sent no shares")
	}
	y, err := client.MaskedInput(d.Shares.Sealed, delta, weight)
	if err != nil {
		return nil, fmt.Errorf("mask the input: %w", err)
	}
	err = c.SendInput(ctx, y)
	clear(y)
	if err != nil {
		return nil, err
	}
	if d, out, err = next(ctx, c, updates.MaxUnmask); d == nil {
		return out, err
	}
	if d.Unmask == nil {
		return nil, fmt.Errorf("the coordinator sent no unmask request")
	}
	rv, err := client.Unmask(d.Unmask.Survivors, d.Unmask.Dropped)
	if err != nil {
		s.log.Error("refused the coordinator's unmask request", "round", r.ID, "coordinator", coord, "err", err)
		return nil, fmt.Errorf("refused the coordinator's unmask request: %w", err)
	}
	if err := c.Send(ctx, &updates.Up{Reveals: &updates.Reveals{Reveals: rv}}); err != nil {
		return nil, err
	}
	if d, out, err = next(ctx, c, updates.MaxOutcome); d == nil {
		return out, err
	}
	return nil, fmt.Errorf("the coordinator sent no outcome")
}

// checkRoster verifies a roster: every member's join signed by its trainer for this round and
// coordinator, this trainer at its index with its own keys, the round's announced parameters and
// this model's dimension. It returns the members' keys and this trainer's index.
func (s *Service) checkRoster(ro *updates.Roster, r *announce.Round, coord peer.ID, client *secagg.Client, dim int) ([]secagg.Keys, int, error) {
	sts, err := ro.Open(r.ID, coord)
	if err != nil {
		return nil, 0, err
	}
	mine := client.Keys()
	self := -1
	for i, st := range sts {
		if st.Trainer == s.cfg.Self.String() {
			self = i
		}
	}
	switch {
	case self < 0:
		return nil, 0, fmt.Errorf("this trainer is not in it")
	case self != ro.Self:
		return nil, 0, fmt.Errorf("it places this trainer at %d, its index is %d", ro.Self, self)
	case string(sts[self].Keys.Seal) != string(mine.Seal) || string(sts[self].Keys.Mask) != string(mine.Mask):
		return nil, 0, fmt.Errorf("this trainer's keys in it are not the ones it joined with")
	case ro.Params != *r.SecAgg:
		return nil, 0, fmt.Errorf("its parameters %+v are not the round's announced %+v", ro.Params, *r.SecAgg)
	case ro.Dim != uint64(dim):
		return nil, 0, fmt.Errorf("it is for vectors of %d coordinates, the model has %d", ro.Dim, dim)
	}
	keys := make([]secagg.Keys, len(sts))
	for i := range sts {
		keys[i] = sts[i].Keys
	}
	return keys, self, nil
}

// secureTrainerReport is the report a trainer shows for a secure round it joined.
func (s *Service) secureTrainerReport(id string) (*store.ReportRecord, bool) {
	var rec secureTrainer
	if s.deps.Store.Get(store.SecureKey(id), &rec) != nil {
		return nil, false
	}
	rep := &store.ReportRecord{
		RoundID: id, Participants: []store.ParticipantRecord{}, Anchors: []string{}, Metrics: map[string]float64{}, Timings: map[string]float64{},
		Secure: true, Contributors: append([]string{}, rec.Contributors...), Dropouts: append([]string{}, rec.Dropouts...), Error: rec.Error,
	}
	if r, err := s.Get(id); err == nil {
		rep.BaseModel, rep.Rule, rep.SecAgg = hex.EncodeToString(r.Model), r.Rule, reportSecAgg(r.SecAgg)
	}
	if rec.NewModel != nil {
		rep.NewModel = hex.EncodeToString(rec.NewModel)
	}
	// This trainer's line: accepted once its input is in the aggregate; Reason says where it
	// stands (joined, contributed, dropped, failed).
	rep.Participants = append(rep.Participants, store.ParticipantRecord{PeerID: s.cfg.Self.String(), Accepted: rec.State == secContributed, Reason: rec.State})
	return rep, true
}
