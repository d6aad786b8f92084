package keys

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/apierr"
	keyswire "github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// parallelAsks bounds the coordinators asked at once for deposits, probes and shares.
const parallelAsks = 8

// EscrowFailure is a coordinator that does not hold its key or share, and why.
type EscrowFailure struct {
	Peer peer.ID
	Err  string
}

// EscrowReport says how a model's key was escrowed: Holders coordinators should hold the key (or
// a share of it), Deposited do now (this node included), and Needed of them must answer for a
// trainer to unlock it (the threshold; 1 for a whole key). Failed lists the others.
type EscrowReport struct {
	Holders, Deposited, Needed int
	Failed                     []EscrowFailure
}

// Err is nil when enough coordinators hold a threshold version's shares (and always for a
// whole-key version: its publisher only logs a shortfall, as before threshold escrow); else an
// *apierr.Error Unavailable naming those that failed and saying the model cannot be unlocked
// until they hold their shares.
func (r EscrowReport) Err(id content.ModelID) error {
	if r.Needed < 2 || r.Deposited >= r.Needed {
		return nil
	}
	var names []string
	for _, f := range r.Failed {
		names = append(names, f.Peer.String()+" ("+f.Err+")")
	}
	return &apierr.Error{Code: apierr.Unavailable,
		Message: fmt.Sprintf("model %s was published, but only %d of its %d coordinators hold their shares of its key and %d are needed: no trainer can unlock it until they do; retry with `califusiond model escrow %s` once they are reachable",
			hex.EncodeToString(id[:]), r.Deposited, r.Holders, r.Needed, hex.EncodeToString(id[:])),
		Data: strings.Join(names, "; ")}
}

// EscrowKey deposits model r's key k with the coordinators that hold it: for a whole-key version
// the coordinators its lineage root names, each the whole key (as Escrow); for a threshold
// version its share holders, each its own share (split again from k: SplitKey is reproducible),
// a holder that is this node keeping its share in its own keyring. It may be called again to
// retry the coordinators that failed (a deposit is idempotent).
func (c *Client) EscrowKey(ctx context.Context, r *catalog.Record, k content.Key) EscrowReport {
	if !r.Manifest.IsThreshold() {
		coords, _ := r.CoordinatorSet()
		rep := EscrowReport{Holders: len(coords), Needed: 1}
		rep.Deposited, rep.Failed = c.deposit(ctx, coords, func(peer.ID, int) *keyswire.Deposit {
			return &keyswire.Deposit{Manifest: r.Signed, Key: k[:]}
		}, nil)
		return rep
	}
	holders := r.Manifest.ShareHolderIDs()
	rep := EscrowReport{Holders: len(holders), Needed: int(r.Manifest.Threshold)}
	shares, commits, err := content.SplitKey(k, r.Manifest.Salt, len(holders), int(r.Manifest.Threshold))
	if err != nil || !slices.EqualFunc(commits, r.Manifest.ShareCommitments, func(a, b []byte) bool { return string(a) == string(b) }) {
		for _, h := range holders {
			rep.Failed = append(rep.Failed, EscrowFailure{h, "the key's shares do not match the manifest's share commitments"})
		}
		return rep
	}
	defer func() {
		for _, s := range shares {
			clear(s.Y)
		}
	}()
	rep.Deposited, rep.Failed = c.deposit(ctx, holders, func(_ peer.ID, i int) *keyswire.Deposit {
		return &keyswire.Deposit{Manifest: r.Signed, Share: shares[i].Y, Index: uint(i)}
	}, func(i int) error {
		return c.deps.Store.Update(func(tx *store.Tx) error { return c.deps.Keys.PutShare(tx, r.ID, uint(i), shares[i].Y) })
	})
	return rep
}

// deposit sends msg(co, i) to each coordinator co = coords[i], a few at a time; a coordinator that
// is this node keeps its part through self (nil: it holds it already).
func (c *Client) deposit(ctx context.Context, coords []peer.ID, msg func(peer.ID, int) *keyswire.Deposit, self func(i int) error) (int, []EscrowFailure) {
	var (
		mu        sync.Mutex
		wg        sync.WaitGroup
		sem       = make(chan struct{}, parallelAsks)
		deposited int
		failed    []EscrowFailure
	)
	note := func(co peer.ID, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed = append(failed, EscrowFailure{co, err.Error()})
			return
		}
		deposited++
	}
	for i, co := range coords {
		if co == c.cfg.Self {
			var err error
			if self != nil {
				err = self(i)
			}
			note(co, err)
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			_, err := keyswire.Request(dctx, c.deps.Host, co, keyswire.PurposeEscrow, msg(co, i))
			if err != nil {
				c.log.Warn("escrow key", "peer", co, "err", err)
			}
			note(co, err)
		}()
	}
	wg.Wait()
	return deposited, failed
}

// holder is one share holder of a threshold version: its peer and its index.
type holder struct {
	peer  peer.ID
	index uint
}

// shareHolders returns r's share holders with their indexes. They are named by the version's
// manifest, whose signer its lineage authorises (the catalog verified it); a trainer need not
// have heard of a later coordinator update to ask them, and each share is checked against the
// manifest's commitments whoever sends it.
func shareHolders(r *catalog.Record) []holder {
	var out []holder
	for i, h := range r.Manifest.ShareHolderIDs() {
		out = append(out, holder{h, uint(i)})
	}
	return out
}

// shareSet collects checked shares of one version, at most one per holder index.
type shareSet struct {
	r      *catalog.Record
	mu     sync.Mutex
	shares map[uint]content.KeyShare
	// refusals are the coordinators' answers that gave no share, by peer.
	refusals map[peer.ID]error
}

func newShareSet(r *catalog.Record) *shareSet {
	return &shareSet{r: r, shares: map[uint]content.KeyShare{}, refusals: map[peer.ID]error{}}
}

func (s *shareSet) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.shares)
}

func (s *shareSet) has(index uint) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.shares[index]
	return ok
}

// add checks a share that h answered: it must be h's own (its index) and match the manifest's
// commitment for this version.
func (s *shareSet) add(h holder, index uint, y []byte) error {
	if index != h.index {
		return fmt.Errorf("coordinator %s sent share %d, but it holds share %d of model %x", h.peer, index, h.index, s.r.ID[:6])
	}
	if err := content.CheckShare(s.r.Manifest, index, y); err != nil {
		return fmt.Errorf("the share coordinator %s sent does not match share commitment %d of model %x (a share of another version or coordinator)", h.peer, index, s.r.ID[:6])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shares[index] = content.KeyShare{X: byte(index + 1), Y: append([]byte(nil), y...)}
	return nil
}

func (s *shareSet) refuse(p peer.ID, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusals[p] = err
}

// wipe clears every collected share.
func (s *shareSet) wipe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sh := range s.shares {
		clear(sh.Y)
	}
}

// combine rebuilds the key from the collected shares and checks it against the key commitment.
func (s *shareSet) combine() (content.Key, error) {
	s.mu.Lock()
	list := make([]content.KeyShare, 0, len(s.shares))
	for _, sh := range s.shares {
		list = append(list, sh)
	}
	s.mu.Unlock()
	k, err := content.CombineKey(s.r.Manifest, list)
	if errors.Is(err, content.ErrKeyCommitment) {
		return content.Key{}, apierr.Errorf(apierr.Integrity, "the reconstructed key does not match the manifest's key commitment of model %x: its share commitments and key commitment disagree (a bad manifest from its signer)", s.r.ID[:6])
	}
	return k, err
}

// reasons lists each coordinator's answer that gave no share.
func (s *shareSet) reasons() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var why []string
	for p, err := range s.refusals {
		why = append(why, p.String()+": "+err.Error())
	}
	slices.Sort(why)
	return strings.Join(why, "; ")
}

// shortfall is the one error when fewer than t shares came back: how many of how many needed,
// with each coordinator's answer in Data. A coordinator's refusal other than not-found or
// unreachable (a payment refused, say) gives the code.
func (s *shareSet) shortfall(asked int, what string) error {
	why := s.reasons()
	s.mu.Lock()
	defer s.mu.Unlock()
	code := apierr.Unavailable
	for _, err := range s.refusals {
		var ae *apierr.Error
		if errors.As(err, &ae) && ae.Code != apierr.NotFound && ae.Code != apierr.Unavailable && code == apierr.Unavailable {
			code = ae.Code
		}
	}
	return &apierr.Error{Code: code,
		Message: fmt.Sprintf("only %d of the %d key shares needed to unlock model %x were received from its %d share-holding coordinators asked: %s",
			len(s.shares), s.r.Manifest.Threshold, s.r.ID[:6], asked, what),
		Data: why}
}

// ask sends req (purpose) to each holder in hs that has not given its share yet, a few at a
// time, and adds the shares that check. With enough > 0 it stops asking (and cancels the asks
// in flight) once the set holds that many shares: a dead holder then costs nothing when the
// others suffice. A payment (enough 0) is presented to every holder, so each records it.
func (c *Client) ask(ctx context.Context, set *shareSet, hs []holder, purpose string, req any, enough int) {
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, parallelAsks)
	)
	actx, stop := context.WithCancel(ctx)
	defer stop()
	done := func() bool { return enough > 0 && set.count() >= enough }
	for _, h := range hs {
		if h.peer == c.cfg.Self || set.has(h.index) {
			continue
		}
		if done() {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			uctx, cancel := context.WithTimeout(actx, 2*time.Minute)
			defer cancel()
			res, err := keyswire.Request(uctx, c.deps.Host, h.peer, purpose, req)
			var refusal *keyswire.Error
			switch {
			case err != nil && done():
				return // cancelled: the others' shares sufficed
			case errors.As(err, &refusal):
				set.refuse(h.peer, &apierr.Error{Code: refusal.Code, Message: refusal.Message})
				return
			case err != nil:
				set.refuse(h.peer, apierr.Errorf(apierr.Unavailable, "could not be reached: %v", err))
				return
			}
			defer clear(res.Share)
			if err := set.add(h, res.Index, res.Share); err != nil {
				c.log.Warn("key share rejected", "model", hex.EncodeToString(set.r.ID[:]), "coordinator", h.peer, "err", err)
				set.refuse(h.peer, apierr.Errorf(apierr.Integrity, "%v", err))
			}
			if done() {
				stop()
			}
		}()
	}
	wg.Wait()
}

// addOwn adds this node's own share of r, if it holds one.
func (c *Client) addOwn(set *shareSet, hs []holder) {
	for _, h := range hs {
		if h.peer != c.cfg.Self {
			continue
		}
		if idx, y, err := c.deps.Keys.GetShare(set.r.ID); err == nil {
			if err := set.add(h, idx, y); err != nil {
				c.log.Warn("own key share does not check", "model", hex.EncodeToString(set.r.ID[:]), "err", err)
			}
			clear(y)
		}
	}
}

// probeShares returns the holders among hs (this node aside) that say they hold their share.
func (c *Client) probeShares(ctx context.Context, set *shareSet, hs []holder) []holder {
	var (
		mu     sync.Mutex
		out    []holder
		wg     sync.WaitGroup
		sem    = make(chan struct{}, parallelAsks)
		enough = make(chan struct{})
		once   sync.Once
	)
	// Once enough holders answered to unlock, the others get probeGrace more (so a payment is
	// presented to as many as answer soon) and no longer: an unreachable holder does not hold
	// up an unlock that the others can serve.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	need := int(set.r.Manifest.Threshold) - set.count()
	for _, h := range hs {
		if h.peer == c.cfg.Self {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			rctx, rcancel := context.WithTimeout(pctx, 15*time.Second)
			defer rcancel()
			res, err := keyswire.Request(rctx, c.deps.Host, h.peer, keyswire.PurposeProbe, &keyswire.Probe{Model: set.r.ID[:]})
			if err == nil && res.Holds != keyswire.HoldsShare {
				err = errors.New("it holds no share")
			}
			if err != nil {
				set.refuse(h.peer, apierr.Errorf(apierr.Unavailable, "probe: %v", err))
				return
			}
			mu.Lock()
			out = append(out, h)
			if len(out) >= need {
				once.Do(func() { close(enough) })
			}
			mu.Unlock()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-enough:
		select {
		case <-done:
		case <-time.After(probeGrace):
			cancel()
			<-done
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]holder(nil), out...)
}

// probeGrace is how long the probes of the other share holders may run on once enough of them
// answered.
const probeGrace = time.Second

// keep stores the rebuilt key of set's version.
func (c *Client) keep(set *shareSet, how string, block uint64) error {
	k, err := set.combine()
	if err != nil {
		return err
	}
	defer k.Wipe()
	r := set.r
	if err := c.deps.Store.Update(func(tx *store.Tx) error { return c.deps.Keys.Put(tx, r.ID, k) }); err != nil {
		return err
	}
	c.log.Info("model unlocked from key shares", "model", hex.EncodeToString(r.ID[:]), "shares", set.count(), "how", how, "block", block)
	return nil
}

// unlockShares is Unlock for a threshold version: with block nil it probes the share holders and
// pays only when at least t of them hold their shares (and this node is not entitled already),
// then presents the one payment to each; with block set it presents that block on ledgerID.
func (c *Client) unlockShares(ctx context.Context, r *catalog.Record, block *uint64, ledgerID, payer string) error {
	set := newShareSet(r)
	defer set.wipe()
	hs := shareHolders(r)
	t := int(r.Manifest.Threshold)
	c.addOwn(set, hs)
	req := &keyswire.Unlock{Model: r.ID[:], Ledger: ledgerID, Payer: payer}
	if block == nil {
		reach := c.probeShares(ctx, set, hs)
		if set.count()+len(reach) < t {
			return &apierr.Error{Code: apierr.Unavailable,
				Message: fmt.Sprintf("only %d of the %d coordinators holding shares of model %x answered and %d are needed to unlock it: nothing was paid; retry when more of them are reachable", set.count()+len(reach), len(hs), r.ID[:6], t),
				Data:    set.reasons()}
		}
		// Entitled already (paid before, or published the lineage): no payment.
		c.ask(ctx, set, reach, keyswire.PurposeUnlock, &keyswire.Unlock{Model: r.ID[:]}, t)
		if set.count() >= t {
			return c.keep(set, "entitled", 0)
		}
		paid, err := c.pay(ctx, r, false)
		if err != nil {
			return err
		}
		req.Ledger, req.Block = paid.Ledger, paid.Block
		hs = reach
	} else {
		req.Block = *block
	}
	if req.Ledger == "" {
		req.Ledger = c.deps.Ledger.CanisterID()
	}
	c.ask(ctx, set, hs, keyswire.PurposeUnlock, req, 0)
	if set.count() < t {
		return set.shortfall(len(hs), fmt.Sprintf("payment block %d is recorded and is presented again, never paid again, when model unlock is retried once more coordinators are reachable", req.Block))
	}
	return c.keep(set, "paid", req.Block)
}

// claimShares is Claim for a threshold version: the shares of a key this node is entitled to.
func (c *Client) claimShares(ctx context.Context, r *catalog.Record) error {
	set := newShareSet(r)
	defer set.wipe()
	hs := shareHolders(r)
	c.addOwn(set, hs)
	c.ask(ctx, set, hs, keyswire.PurposeUnlock, &keyswire.Unlock{Model: r.ID[:]}, int(r.Manifest.Threshold))
	if set.count() < int(r.Manifest.Threshold) {
		return set.shortfall(len(hs), "retry when more of them are reachable")
	}
	return c.keep(set, "entitled", 0)
}

// HoldForRound rebuilds a threshold version's key on a coordinator of its lineage that runs a
// round on it, and holds it in memory only (Keyring.Hold: never stored; Keyring.Release wipes
// it): its own share and those of the other holders among coords (nil: every holder), each of
// which releases its share only while it knows this coordinator runs a round on r
// (Rounds.Runs). It returns nil at once when this node holds the key already, and a whole-key
// version is claimed as Claim does.
func (c *Client) HoldForRound(ctx context.Context, r *catalog.Record, coords []peer.ID) error {
	if c.deps.Keys.Has(r.ID) {
		return nil
	}
	if !r.Manifest.IsThreshold() {
		return c.Claim(ctx, r, coords)
	}
	set := newShareSet(r)
	defer set.wipe()
	hs := shareHolders(r)
	if coords != nil {
		hs = slices.DeleteFunc(hs, func(h holder) bool { return h.peer != c.cfg.Self && !slices.Contains(coords, h.peer) })
	}
	c.addOwn(set, hs)
	c.ask(ctx, set, hs, keyswire.PurposeRoundShare, &keyswire.RoundShare{Model: r.ID[:]}, int(r.Manifest.Threshold))
	if set.count() < int(r.Manifest.Threshold) {
		return set.shortfall(len(hs), "the others must know this coordinator runs a round on the version (its round announcement) and be reachable")
	}
	k, err := set.combine()
	if err != nil {
		return err
	}
	c.deps.Keys.Hold(r.ID, k)
	c.log.Info("key held in memory for a round", "model", hex.EncodeToString(r.ID[:]), "shares", set.count())
	return nil
}
