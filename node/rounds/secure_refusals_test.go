package rounds

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/node/secagg"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// rawTrainer drives the trainer's side of updates/secagg/1 by hand, to misbehave.
type rawTrainer struct {
	t      *testing.T
	h      host.Host
	r      *announce.Round
	coord  peer.ID
	client *secagg.Client
	c      *updates.Conn
	roster *updates.Roster
}

func (n *secureNet) raw(t *testing.T, h host.Host, round string, entitled bool) *rawTrainer {
	t.Helper()
	r, err := n.c.s.Get(round)
	if err != nil {
		t.Fatal(err)
	}
	if entitled {
		n.c.grants.grant(n.model, h.ID())
	}
	client, err := secagg.NewClient(*r.SecAgg, []byte(r.ID), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &rawTrainer{t: t, h: h, r: r, coord: n.hosts[0].ID(), client: client}
}

// signedJoin is the trainer's join, signed.
func (rt *rawTrainer) signedJoin() *updates.Join {
	j, err := updates.SignJoin(rt.h.Peerstore().PrivKey(rt.h.ID()), &updates.JoinStatement{
		Round: rt.r.ID, Trainer: rt.h.ID().String(), Coordinator: rt.coord.String(), Keys: rt.client.Keys(),
	})
	if err != nil {
		rt.t.Fatal(err)
	}
	return j
}

// send opens the session (once) and sends msgs.
func (rt *rawTrainer) send(msgs ...*updates.Up) {
	rt.t.Helper()
	if rt.c == nil {
		s, err := kex.Dial(rt.t.Context(), rt.h, rt.coord, updates.PurposeSecAgg)
		if err != nil {
			rt.t.Fatal(err)
		}
		rt.t.Cleanup(func() { s.Close() })
		rt.c = updates.NewConn(s)
		rt.c.KeepaliveEvery = time.Second
	}
	for _, m := range msgs {
		if err := rt.c.Send(rt.t.Context(), m); err != nil {
			rt.t.Fatal(err)
		}
	}
}

// next reads the coordinator's next message.
func (rt *rawTrainer) next() (*updates.Down, error) {
	ctx, cancel := context.WithTimeout(rt.t.Context(), 30*time.Second)
	defer cancel()
	return rt.c.WaitDown(ctx, updates.MaxOutcome+updates.MaxRoster)
}

// refusal reads until the coordinator's next refusal (skipping what the phases send).
func (rt *rawTrainer) refusal() *updates.Receipt {
	rt.t.Helper()
	for {
		d, err := rt.next()
		if err != nil {
			rt.t.Fatalf("waiting for a refusal: %v", err)
		}
		if d.Receipt != nil && d.Receipt.Code != 0 {
			return d.Receipt
		}
	}
}

// joinAndShare joins, reads the roster and sends the shares.
func (rt *rawTrainer) joinAndShare() {
	rt.t.Helper()
	rt.send(&updates.Up{Join: rt.signedJoin()})
	if d, err := rt.next(); err != nil || d.Receipt == nil || !d.Receipt.Go {
		rt.t.Fatalf("join answered %+v, %v; want admitted", d.Receipt, err)
	}
	d, err := rt.next()
	if err != nil || d.Roster == nil {
		rt.t.Fatalf("want a roster, got %+v, %v", d, err)
	}
	rt.roster = d.Roster
	sts, err := d.Roster.Open(rt.r.ID, rt.coord)
	if err != nil {
		rt.t.Fatal(err)
	}
	keys := make([]secagg.Keys, len(sts))
	for i := range sts {
		keys[i] = sts[i].Keys
	}
	sealed, err := rt.client.ShareKeys(keys, d.Roster.Self)
	if err != nil {
		rt.t.Fatal(err)
	}
	rt.send(&updates.Up{Shares: &updates.Shares{Sealed: sealed}})
}

// maskedInput reads the routed shares and returns a masked zero vector.
func (rt *rawTrainer) maskedInput() []uint64 {
	rt.t.Helper()
	d, err := rt.next()
	if err != nil || d.Shares == nil {
		rt.t.Fatalf("want routed shares, got %+v, %v", d, err)
	}
	y, err := rt.client.MaskedInput(d.Shares.Sealed, make([]float32, rt.roster.Dim), 1)
	if err != nil {
		rt.t.Fatal(err)
	}
	return y
}

// submitAll has trainers 0..k-1 train and submit (they run the dialogue in the background).
func (n *secureNet) submitAll(t *testing.T, round string, k int) {
	t.Helper()
	for i := range k {
		id, _, _ := n.train(t, i, round)
		if _, err := n.trainers[i].s.Submit(t.Context(), round, id); err != nil {
			t.Fatalf("Submit(trainer %d) = %v", i, err)
		}
	}
}

// TestSecureWrongLengthInput: a masked input of the wrong length is refused before its body is
// read, its trainer is dropped, and the round completes with the others.
func TestSecureWrongLengthInput(t *testing.T) {
	n := newSecureNet(t, 3, 1)
	round := n.open(t, OpenParams{MinUpdates: 4})
	rt := n.raw(t, n.hosts[4], round, true)
	n.submitAll(t, round, 3)
	rt.joinAndShare()
	y := rt.maskedInput()
	rt.send(&updates.Up{Input: &updates.InputHeader{Coords: uint64(len(y) - 1)}})
	if r := rt.refusal(); r.Code != apierr.InvalidParams || !strings.Contains(r.Message, "coordinates") {
		t.Errorf("wrong-length input refused with %+v; want invalid_params naming the coordinates", r)
	}
	n.waitRound(t, round, announce.RoundDone)
	if rep := n.report(t, round); len(rep.Contributors) != 3 || len(rep.Dropouts) != 1 || rep.Dropouts[0] != rt.h.ID().String() {
		t.Errorf("report contributors %v dropouts %v; want 3 and the misbehaving trainer", rep.Contributors, rep.Dropouts)
	}
}

// TestSecureDuplicateInput: a second masked input is refused and the first stays in the sum:
// the trainer still contributes.
func TestSecureDuplicateInput(t *testing.T) {
	n := newSecureNet(t, 3, 1)
	round := n.open(t, OpenParams{MinUpdates: 4})
	rt := n.raw(t, n.hosts[4], round, true)
	n.submitAll(t, round, 3)
	rt.joinAndShare()
	y := rt.maskedInput()
	if err := rt.c.SendInput(t.Context(), y); err != nil {
		t.Fatal(err)
	}
	if err := rt.c.SendInput(t.Context(), y); err != nil {
		t.Fatal(err)
	}
	var unmask *updates.Unmask
	for unmask == nil {
		d, err := rt.next()
		switch {
		case err != nil:
			t.Fatal(err)
		case d.Receipt != nil && d.Receipt.Code != 0:
			if d.Receipt.Code != apierr.Conflict || !strings.Contains(d.Receipt.Message, "duplicate masked input") {
				t.Errorf("second input refused with %+v; want a duplicate conflict", d.Receipt)
			}
		case d.Unmask != nil:
			unmask = d.Unmask
		}
	}
	rv, err := rt.client.Unmask(unmask.Survivors, unmask.Dropped)
	if err != nil {
		t.Fatal(err)
	}
	rt.send(&updates.Up{Reveals: &updates.Reveals{Reveals: rv}})
	n.waitRound(t, round, announce.RoundDone)
	if rep := n.report(t, round); len(rep.Contributors) != 4 {
		t.Errorf("report contributors %v; want all 4 (the duplicate changed nothing)", rep.Contributors)
	}
}

// TestSecureLateInputAndReveals: a member silent past the input phase's timeout is dropped but
// keeps its session; its input after unmasking started is refused, as are its reveals (it is no
// survivor), and the round completes without it.
func TestSecureLateInputAndReveals(t *testing.T) {
	old := securePhaseTimeout
	securePhaseTimeout = 2 * time.Second
	t.Cleanup(func() { securePhaseTimeout = old })
	n := newSecureNet(t, 3, 1)
	round := n.open(t, OpenParams{MinUpdates: 4})
	rt := n.raw(t, n.hosts[4], round, true)
	n.submitAll(t, round, 3)
	rt.joinAndShare()
	y := rt.maskedInput()
	waitFor(t, 30*time.Second, func() error {
		if lr := n.c.s.liveRound(round); lr != nil {
			lr.mu.Lock()
			defer lr.mu.Unlock()
			if lr.sec.phase < phaseUnmask {
				return fmt.Errorf("secure round in phase %s", lr.sec.phase)
			}
		}
		return nil
	})
	if err := rt.c.SendInput(t.Context(), y); err != nil {
		t.Fatal(err)
	}
	if r := rt.refusal(); r.Code != apierr.Conflict || !strings.Contains(r.Message, "after unmasking started") {
		t.Errorf("late input refused with %+v; want a conflict: unmasking started", r)
	}
	rt.send(&updates.Up{Reveals: &updates.Reveals{Reveals: []secagg.Reveal{{Of: 0, Share: make([]byte, 32)}}}})
	if r := rt.refusal(); r.Code != apierr.Conflict || !strings.Contains(r.Message, "not a survivor") {
		t.Errorf("reveals of a non-survivor refused with %+v; want a conflict: not a survivor", r)
	}
	n.waitRound(t, round, announce.RoundDone)
	if rep := n.report(t, round); len(rep.Contributors) != 3 || len(rep.Dropouts) != 1 {
		t.Errorf("report contributors %v dropouts %v; want 3 and 1", rep.Contributors, rep.Dropouts)
	}
}

// TestSecureJoinRefusals: a join from a peer that may not submit is refused before anything
// after it is read (the session then ends), as is a join with a bad signature and a second join
// of a member; none of them changes the round.
func TestSecureJoinRefusals(t *testing.T) {
	n := newSecureNet(t, 0, 3)
	round := n.open(t, OpenParams{MinUpdates: 4})

	unpaid := n.raw(t, n.hosts[1], round, false)
	// The join and, pipelined behind it, shares the coordinator must never read.
	unpaid.send(&updates.Up{Join: unpaid.signedJoin()}, &updates.Up{Shares: &updates.Shares{Sealed: []secagg.Sealed{{From: 0, To: 1, Box: []byte{1}}}}})
	if d, err := unpaid.next(); err != nil || d.Receipt == nil || d.Receipt.Code != apierr.NotUnlocked {
		t.Errorf("join of an unentitled peer answered %+v, %v; want not_unlocked", d.Receipt, err)
	}
	if d, err := unpaid.next(); err == nil {
		t.Errorf("after the refusal the coordinator sent %+v; want the session ended", d)
	}

	forger := n.raw(t, n.hosts[2], round, true)
	j := forger.signedJoin()
	j.Sig[0] ^= 1
	forger.send(&updates.Up{Join: j})
	if d, err := forger.next(); err != nil || d.Receipt == nil || d.Receipt.Code != apierr.Integrity {
		t.Errorf("join with a bad signature answered %+v, %v; want integrity", d, err)
	}

	member := n.raw(t, n.hosts[3], round, true)
	member.send(&updates.Up{Join: member.signedJoin()})
	if d, err := member.next(); err != nil || d.Receipt == nil || !d.Receipt.Go {
		t.Fatalf("join answered %+v, %v; want admitted", d.Receipt, err)
	}
	again := n.raw(t, n.hosts[3], round, true)
	again.send(&updates.Up{Join: again.signedJoin()})
	if d, err := again.next(); err != nil || d.Receipt == nil || d.Receipt.Code != apierr.Conflict || !strings.Contains(d.Receipt.Message, "duplicate join") {
		t.Errorf("second join answered %+v, %v; want a duplicate conflict", d, err)
	}
	member.send(&updates.Up{Join: member.signedJoin()})
	if r := member.refusal(); r.Code != apierr.Conflict || !strings.Contains(r.Message, "duplicate join") {
		t.Errorf("a second join in the session refused with %+v; want a duplicate conflict", r)
	}
	if r, _ := n.c.s.Get(round); r.Updates != 1 || r.State != announce.RoundOpen {
		t.Errorf("round after the refusals = %+v; want open with the one member", r)
	}
}

// TestSecureTrainerRefusesForgedRoster: a trainer refuses a roster without itself, one with a
// member whose join does not verify, and one whose parameters are not the round's: it shares
// nothing and its round_report says why.
func TestSecureTrainerRefusesForgedRoster(t *testing.T) {
	n := newSecureNet(t, 1, 0)
	n.c.s.Close() // the coordinator's own server is replaced by a forger below
	coord := n.hosts[0]
	tr := n.trainers[0]
	type variant func(r *announce.Round, mine updates.Join) *updates.Roster
	other := func(r *announce.Round) updates.Join {
		priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		id, _ := peer.IDFromPrivateKey(priv)
		cl, _ := secagg.NewClient(*r.SecAgg, []byte(r.ID), rand.Reader)
		j, err := updates.SignJoin(priv, &updates.JoinStatement{Round: r.ID, Trainer: id.String(), Coordinator: coord.ID().String(), Keys: cl.Keys()})
		if err != nil {
			t.Fatal(err)
		}
		return *j
	}
	variants := map[string]variant{
		"this trainer is not in it": func(r *announce.Round, _ updates.Join) *updates.Roster {
			return &updates.Roster{Members: []updates.Join{other(r), other(r), other(r)}, Params: *r.SecAgg, Dim: uint64(flatDim(n.base)), Self: 0}
		},
		"not signed": func(r *announce.Round, mine updates.Join) *updates.Roster {
			bad := other(r)
			bad.Sig[3] ^= 1
			return &updates.Roster{Members: []updates.Join{mine, bad, other(r)}, Params: *r.SecAgg, Dim: uint64(flatDim(n.base)), Self: 0}
		},
		"parameters": func(r *announce.Round, mine updates.Join) *updates.Roster {
			p := *r.SecAgg
			p.Clip *= 1000
			return &updates.Roster{Members: []updates.Join{mine, other(r), other(r)}, Params: p, Dim: uint64(flatDim(n.base)), Self: 0}
		},
	}
	byRound := map[string]variant{}
	srv := kex.NewServer(t.Context(), coord, slog.New(slog.DiscardHandler))
	srv.Handle(updates.PurposeSecAgg, func(ctx context.Context, s *kex.Session) error {
		c := updates.NewConn(s)
		up, err := c.RecvUp(ctx, updates.MaxJoin)
		if err != nil || up.Join == nil {
			return errors.New("no join")
		}
		st, err := up.Join.Open(s.RemotePeer())
		if err != nil {
			return err
		}
		r, err := n.c.s.Get(st.Round)
		if err != nil {
			return err
		}
		c.Send(ctx, &updates.Down{Receipt: &updates.Receipt{Go: true}})
		c.Send(ctx, &updates.Down{Roster: byRound[st.Round](r, *up.Join)})
		_, err = c.RecvUp(ctx, updates.MaxUp) // the trainer shares nothing: its session ends
		if err == nil {
			return errors.New("the trainer answered a forged roster")
		}
		return nil
	})
	for want, v := range variants {
		round := n.open(t, OpenParams{MinUpdates: 3})
		byRound[round] = v
		r, _ := n.c.s.Get(round)
		if err := tr.s.remember(r); err != nil {
			t.Fatal(err)
		}
		id, _, _ := n.train(t, 0, round)
		if res, err := tr.s.Submit(t.Context(), round, id); err != nil || !res.Secure {
			t.Fatalf("Submit = %+v, %v; want admitted", res, err)
		}
		waitFor(t, 10*time.Second, func() error {
			var rec secureTrainer
			if err := tr.st.Get(store.SecureKey(round), &rec); err != nil || rec.State != secFailed {
				return fmt.Errorf("the trainer's record = %+v, %v; want failed", rec, err)
			}
			if !strings.Contains(rec.Error, "refused the coordinator's roster") || !strings.Contains(rec.Error, want) {
				t.Errorf("the trainer's error = %q; want it to refuse the roster: %s", rec.Error, want)
			}
			return nil
		})
		rep, err := tr.s.Report(t.Context(), round)
		if err != nil || !strings.Contains(rep.Error, want) {
			t.Errorf("the trainer's report = %+v, %v; want the refusal", rep, err)
		}
	}
}

// TestSecureTrainerRefusesBadUnmask: an honest trainer refuses an unmask request that names one
// trainer both as a survivor and as dropped (it would reveal both its secrets); the refusal is in
// its round_report.
func TestSecureTrainerRefusesBadUnmask(t *testing.T) {
	n := newSecureNet(t, 1, 0)
	n.c.s.Close()
	coord := n.hosts[0]
	tr := n.trainers[0]
	srv := kex.NewServer(t.Context(), coord, slog.New(slog.DiscardHandler))
	srv.Handle(updates.PurposeSecAgg, func(ctx context.Context, s *kex.Session) error {
		c := updates.NewConn(s)
		up, err := c.RecvUp(ctx, updates.MaxJoin)
		if err != nil || up.Join == nil {
			return errors.New("no join")
		}
		st, _ := up.Join.Open(s.RemotePeer())
		r, err := n.c.s.Get(st.Round)
		if err != nil {
			return err
		}
		members := []updates.Join{*up.Join}
		for range 2 {
			priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
			id, _ := peer.IDFromPrivateKey(priv)
			cl, _ := secagg.NewClient(*r.SecAgg, []byte(r.ID), rand.Reader)
			j, _ := updates.SignJoin(priv, &updates.JoinStatement{Round: r.ID, Trainer: id.String(), Coordinator: coord.ID().String(), Keys: cl.Keys()})
			members = append(members, *j)
		}
		c.Send(ctx, &updates.Down{Receipt: &updates.Receipt{Go: true}})
		c.Send(ctx, &updates.Down{Roster: &updates.Roster{Members: members, Params: *r.SecAgg, Dim: uint64(flatDim(n.base)), Self: 0}})
		if up, err := c.RecvUp(ctx, updates.MaxUp); err != nil || up.Shares == nil {
			return errors.New("no shares")
		}
		c.Send(ctx, &updates.Down{Shares: &updates.Shares{}}) // no neighbour's shares: no pairwise masks
		if up, err := c.RecvUp(ctx, updates.MaxUp); err != nil || up.Input == nil {
			return errors.New("no input")
		}
		if _, err := c.RecvInput(ctx, flatDim(n.base)+1, nil); err != nil {
			return err
		}
		c.Send(ctx, &updates.Down{Unmask: &updates.Unmask{Survivors: []int{0, 1}, Dropped: []int{1}}})
		c.RecvUp(ctx, updates.MaxUp) // the trainer reveals nothing: its session ends
		return nil
	})
	round := n.open(t, OpenParams{MinUpdates: 3})
	r, _ := n.c.s.Get(round)
	if err := tr.s.remember(r); err != nil {
		t.Fatal(err)
	}
	id, _, _ := n.train(t, 0, round)
	if _, err := tr.s.Submit(t.Context(), round, id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		rep, err := tr.s.Report(t.Context(), round)
		if err != nil || rep.Participants[0].Reason != secFailed {
			return fmt.Errorf("the trainer's report = %+v, %v; want failed", rep, err)
		}
		if !strings.Contains(rep.Error, "refused the coordinator's unmask request") {
			t.Errorf("the trainer's error = %q; want its refusal of the unmask request", rep.Error)
		}
		return nil
	})
}
