package rounds

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/califusion/califusion/node/secagg"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/updates"
)

// serveSecure runs one trainer's updates/secagg/1 session on a secure round: the Join is read
// and judged before anything else (signature, round open and secure, trainer entitled, no other
// session of it in the round); once admitted, a reader takes the trainer's messages as they come
// and this goroutine sends it the roster, its shares, the unmask request and the outcome as the
// round's phases close, with keepalives between.
func (s *Service) serveSecure(ctx context.Context, ks *kex.Session) error {
	c := updates.NewConn(ks)
	from := ks.RemotePeer()
	raw, err := ks.Recv(ctx, updates.MaxJoin)
	if err != nil {
		return err
	}
	refuse := func(r *updates.Receipt) error {
		s.log.Info("secure join refused", "peer", from, "code", r.Code, "err", r.Message)
		return c.Send(ctx, &updates.Down{Receipt: r})
	}
	up, err := updates.DecodeUp(raw)
	if err != nil || up.Join == nil {
		return refuse(receipt(apierr.InvalidParams, "the first message of a secure round's session must be a join"))
	}
	st, err := up.Join.Open(from)
	switch {
	case errors.Is(err, updates.ErrSignature):
		return refuse(receipt(apierr.Integrity, "%v: sign the join with the identity key of the session's peer", err))
	case err != nil:
		return refuse(receipt(apierr.InvalidParams, "%v", err))
	case st.Coordinator != s.cfg.Self.String():
		return refuse(receipt(apierr.InvalidParams, "the join is addressed to %s, not to this coordinator", st.Coordinator))
	}
	lr := s.liveOrOpening(ctx, st.Round)
	if lr == nil {
		if r, err := s.Get(st.Round); err == nil && r.Coordinator == s.cfg.Self.String() {
			return refuse(receipt(apierr.Conflict, "round %s is %s: it takes no more trainers", st.Round, r.State))
		}
		return refuse(receipt(apierr.NotFound, "this coordinator runs no round %q", st.Round))
	}
	if lr.sec == nil { // set before the round is live, never changed
		return refuse(receipt(apierr.Conflict, "round %s is not secure: submit the update in the clear (updates/submit/2)", st.Round))
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m, res := s.secureJoin(lr, from, st, up.Join)
	if res != nil {
		return refuse(res)
	}
	defer s.secureLeave(lr, m)
	if err := c.Send(sctx, &updates.Down{Receipt: &updates.Receipt{Go: true}}); err != nil {
		return err
	}
	read := make(chan struct{})
	go func() {
		s.secureRead(sctx, lr, m, c)
		close(read)
		cancel() // the trainer left (or misbehaved): the writer ends too
	}()
	err = s.secureWrite(sctx, lr, m, c)
	select {
	case <-read:
		// The reader ended first (the trainer left, or was refused): end the session gracefully,
		// so that a refusal it was sent arrives before the end of the stream.
		return nil
	default:
	}
	if err == nil {
		// The outcome is sent: let the trainer read it and close its end (cancelling now would
		// reset the stream under it), within a bound.
		select {
		case <-read:
		case <-time.After(outcomeGrace):
		}
	}
	cancel()
	<-read
	return err
}

// outcomeGrace is how long a session stays open after its outcome for the trainer to close it.
const outcomeGrace = 30 * time.Second

// secureWrite sends a member what each phase gives it, and keepalives while it waits, until the
// outcome is sent or the member is dropped.
func (s *Service) secureWrite(ctx context.Context, lr *liveRound, m *member, c *updates.Conn) error {
	tick := time.NewTicker(secureKeepalive)
	defer tick.Stop()
	var sentRoster, sentShares, sentUnmask bool
	for {
		lr.mu.Lock()
		sr := lr.sec
		var msg *updates.Down
		final := false
		switch {
		case sr.phase >= phaseDone:
			o := sr.outcome
			o.Contributed = sr.phase == phaseDone && m.survivor
			msg, final = &updates.Down{Outcome: &o}, true
		case m.gone:
			lr.mu.Unlock()
			return nil
		case sr.phase >= phaseShares && !sentRoster:
			msg, sentRoster = &updates.Down{Roster: &updates.Roster{Members: sr.joins, Params: sr.p, Dim: uint64(sr.dim), Self: m.index}}, true
		case sr.phase >= phaseInput && m.shared && !sentShares:
			msg, sentShares = &updates.Down{Shares: &updates.Shares{Sealed: sr.srv.SharesFor(m.index)}}, true
		case sr.phase >= phaseUnmask && m.survivor && !sentUnmask:
			msg, sentUnmask = &updates.Down{Unmask: &updates.Unmask{Survivors: sr.survivors, Dropped: sr.dropped}}, true
		}
		changed := sr.changed
		lr.mu.Unlock()
		if msg != nil {
			if err := c.Send(ctx, msg); err != nil || final {
				return err
			}
			continue
		}
		select {
		case <-changed:
		case <-tick.C:
			if err := c.Keepalive(ctx); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// secureRead takes a member's messages as they come until its session ends. A message the round
// refuses is answered with a refusal and changes nothing; one that leaves the session out of
// step (a masked input of the wrong length, a malformed message) also ends the session.
func (s *Service) secureRead(ctx context.Context, lr *liveRound, m *member, c *updates.Conn) {
	refuse := func(r *updates.Receipt) {
		s.log.Info("secure round message refused", "round", lr.r.ID, "peer", m.peer, "code", r.Code, "err", r.Message)
		c.Send(ctx, &updates.Down{Receipt: r})
	}
	for {
		up, err := c.RecvUp(ctx, updates.MaxUp)
		if errors.Is(err, updates.ErrMalformed) {
			refuse(receipt(apierr.InvalidParams, "malformed secure aggregation message: %v", err))
			return
		}
		if err != nil {
			return
		}
		var res *updates.Receipt
		switch {
		case up.Join != nil:
			res = receipt(apierr.Conflict, "duplicate join: %s already joined secure round %s in this session", m.peer, lr.r.ID)
		case up.Shares != nil:
			res = s.secureShares(lr, m, up.Shares.Sealed)
		case up.Input != nil:
			lr.mu.Lock()
			want := uint64(lr.sec.dim) + 1
			lr.mu.Unlock()
			if up.Input.Coords != want {
				refuse(receipt(apierr.InvalidParams, "a masked input of %d coordinates: round %s takes %d (the model's %d and the weight)", up.Input.Coords, lr.r.ID, want, want-1))
				return
			}
			// A masked input is read whole before it is added to the sum: the inputs read at
			// once are bounded by inputMemory, so many trainers of a large model wait their turn
			// instead of filling the coordinator's memory (their streams wait on flow control).
			weight := min(int64(8*want), inputMemory)
			if err := s.inputMem.Acquire(ctx, weight); err != nil {
				return
			}
			h := sha256.New()
			y, err := c.RecvInput(ctx, int(want), func(b []byte) { h.Write(b) })
			if err != nil {
				s.inputMem.Release(weight)
				refuse(receipt(apierr.InvalidParams, "%v", err))
				return
			}
			res = s.secureInput(lr, m, y, h.Sum(nil))
			clear(y)
			s.inputMem.Release(weight)
		case up.Reveals != nil:
			res = s.secureReveals(lr, m, up.Reveals.Reveals)
		}
		if res != nil {
			refuse(res)
		}
	}
}

// secagg's refusals as receipts.
func secaggRefusal(round string, what string, err error) *updates.Receipt {
	switch {
	case errors.Is(err, secagg.ErrDuplicate):
		return receipt(apierr.Conflict, "duplicate %s in secure round %s: one per trainer (%v)", what, round, err)
	case errors.Is(err, secagg.ErrPhase):
		return receipt(apierr.Conflict, "%s out of phase in secure round %s: %v", what, round, err)
	}
	return receipt(apierr.InvalidParams, "%s refused in secure round %s: %v", what, round, err)
}

// secureShares records a member's sealed shares.
func (s *Service) secureShares(lr *liveRound, m *member, sealed []secagg.Sealed) *updates.Receipt {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	sr := lr.sec
	switch {
	case m.shared:
		return receipt(apierr.Conflict, "duplicate shares: %s already shared its keys in secure round %s", m.peer, lr.r.ID)
	case sr.phase != phaseShares || m.dropped:
		return receipt(apierr.Conflict, "shares out of phase: secure round %s is in its %s phase", lr.r.ID, sr.phase)
	}
	if err := sr.srv.AddShares(m.index, sealed); err != nil {
		return secaggRefusal(lr.r.ID, "shares", err)
	}
	m.shared = true
	s.secureAdvance(lr)
	return nil
}

// secureInput folds a member's masked input into the running sum; only its hash is kept.
func (s *Service) secureInput(lr *liveRound, m *member, y []uint64, hash []byte) *updates.Receipt {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	sr := lr.sec
	switch {
	case m.input:
		return receipt(apierr.Conflict, "duplicate masked input: %s already sent one in secure round %s", m.peer, lr.r.ID)
	case sr.phase >= phaseUnmask:
		return receipt(apierr.Conflict, "a masked input after unmasking started in secure round %s: it is not in the sum", lr.r.ID)
	case sr.phase != phaseInput || m.dropped:
		return receipt(apierr.Conflict, "masked input out of phase: secure round %s is in its %s phase", lr.r.ID, sr.phase)
	}
	if err := sr.srv.AddInput(m.index, y); err != nil {
		return secaggRefusal(lr.r.ID, "masked input", err)
	}
	m.input, m.inputHash = true, hash
	s.secureAdvance(lr)
	return nil
}

// secureReveals records a survivor's reveals.
func (s *Service) secureReveals(lr *liveRound, m *member, rv []secagg.Reveal) *updates.Receipt {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	sr := lr.sec
	switch {
	case !m.survivor:
		return receipt(apierr.Conflict, "reveals from %s, which is not a survivor of secure round %s (or come before unmasking): refused", m.peer, lr.r.ID)
	case m.revealed:
		return receipt(apierr.Conflict, "duplicate reveals: %s already revealed in secure round %s", m.peer, lr.r.ID)
	case sr.phase != phaseUnmask || m.dropped:
		return receipt(apierr.Conflict, "reveals out of phase: secure round %s is in its %s phase", lr.r.ID, sr.phase)
	}
	if err := sr.srv.AddReveals(m.index, rv); err != nil {
		return secaggRefusal(lr.r.ID, "reveals", err)
	}
	m.revealed = true
	s.secureAdvance(lr)
	return nil
}

// secureDeadline handles a secure round's deadline: in its advertise phase the roster is fixed
// with whoever joined (or the round fails); later phases have their own timeouts.
func (s *Service) secureDeadline(lr *liveRound) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.r.State != announce.RoundOpen || lr.sec.phase != phaseAdvertise {
		return
	}
	s.closeAdvertise(lr, "the deadline passed: ")
}
