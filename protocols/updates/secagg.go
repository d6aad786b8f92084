package updates

import (
	"bytes"
	"fmt"
	"time"

	"github.com/califusion/califusion/node/secagg"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// # Secure aggregation (updates/secagg/1)
//
// A secure round (announce.Round.Secure) takes no update in the clear: each trainer opens ONE
// session for PurposeSecAgg to the round's coordinator and runs the whole SecAgg+ dialogue of
// node/secagg in it. Every message is one CBOR value in one session message: an Up from the
// trainer, a Down from the coordinator, each with exactly one field set; the receiver caps each
// by the kind it expects next (the caps below). An empty Up or Down (the one byte 0xa0) is a
// keepalive: each side sends one every KeepaliveEvery while it waits for the other, so that no
// session idles out while a phase waits on other trainers.
//
//	T→C  Up{Join}          the signed JoinStatement (round, trainer, coordinator, secagg.Keys)  ≤ MaxJoin
//	C→T  Down{Receipt}     admitted (Go) or refused, before anything else is read                ≤ MaxReceipt
//	C→T  Down{Roster}      every member's Join as signed, the params, dim, the trainer's index   ≤ MaxRoster
//	T→C  Up{Shares}        the trainer's sealed shares, one per neighbour                        ≤ MaxShares
//	C→T  Down{Shares}      the shares routed to the trainer                                      ≤ MaxShares
//	T→C  Up{Input}         InputHeader{coords = dim+1}                                           ≤ MaxUp
//	T→C  raw chunks        the masked vector, coords uint64 little-endian, in messages of
//	                       8·k bytes, at most BodyChunk each
//	C→T  Down{Unmask}      the survivors and the dropped, by roster index                         ≤ MaxUnmask
//	T→C  Up{Reveals}       the trainer's reveals                                                  ≤ MaxReveals
//	C→T  Down{Outcome}     contributed or dropped, the new version, or why the round failed       ≤ MaxOutcome
//
// A refusal is a Down{Receipt} with a non-zero Code, at any point. The coordinator checks the
// Join's signature, that the round is open and secure, that the trainer may submit and that it
// has no other session for the round, all before it reads another byte; a trainer checks every
// member's signature in the roster, that it is in it at its index with its keys, and that the
// params are the round's announced ones, before it shares anything. A trainer whose session
// ends is dropped from the round at once.

// PurposeSecAgg is the session purpose of a secure round's dialogue.
const PurposeSecAgg = "updates/secagg/1"

// Limits of updates/secagg/1.
const (
	// MaxSecureTrainers caps a secure round's roster (and so min_updates of a secure round).
	MaxSecureTrainers = 256
	// MaxJoin caps an Up holding a Join (an RSA identity's key and signature fit).
	MaxJoin = 2 << 10
	// MaxRoster caps a Down holding a Roster: MaxSecureTrainers Joins and the params.
	MaxRoster = MaxSecureTrainers*(MaxJoin+16) + 1<<10
	// maxBox caps one sealed box (two Shamir shares of 32-byte secrets, sealed: ~100 bytes).
	maxBox = 512
	// MaxShares caps an Up or Down holding shares: one sealed box per other roster member.
	MaxShares = MaxSecureTrainers*(maxBox+32) + 1<<10
	// maxShare caps one revealed Shamir share (a share of a 32-byte secret is 32 bytes).
	maxShare = 64
	// MaxReveals caps an Up holding reveals.
	MaxReveals = MaxSecureTrainers*(maxShare+16) + 1<<10
	// MaxUnmask caps a Down holding an unmask request (indices of at most MaxSecureTrainers).
	MaxUnmask = 8 << 10
	// MaxOutcome caps a Down holding an outcome (peer IDs of every member).
	MaxOutcome = 2*MaxSecureTrainers*(maxPeerIDLen+4) + 2<<10
	// MaxUp caps an Up read when any kind may come (shares are the largest).
	MaxUp = MaxShares
	// MaxDim caps a secure round's vector length (its masked vector has MaxDim+1 coordinates:
	// 1 GiB).
	MaxDim = 1<<27 - 1
	// KeepaliveEvery is how often a waiting side sends a keepalive (kex's accepted sessions
	// idle out after 30 s).
	KeepaliveEvery = 10 * time.Second
	// maxOutcomeError bounds an outcome's error text.
	maxOutcomeError = 1024
)

// joinDomain prefixes the bytes a trainer signs to join a secure round.
const joinDomain = "califusion/updates/secagg/join/v1"

// JoinStatement is what a trainer signs to join a secure round: its round keys, bound to the
// round, itself and the coordinator, so that the coordinator cannot substitute other keys for
// it in the roster.
type JoinStatement struct {
	Round       string      `cbor:"1,keyasint"`
	Trainer     string      `cbor:"2,keyasint"` // peer ID of the signer
	Coordinator string      `cbor:"3,keyasint"` // peer ID of the round's coordinator
	Keys        secagg.Keys `cbor:"4,keyasint"`
}

// Join is a signed JoinStatement.
type Join struct {
	Statement []byte `cbor:"1,keyasint"`           // CBOR of a JoinStatement
	Sig       []byte `cbor:"2,keyasint"`           // over joinDomain ‖ Statement
	PubKey    []byte `cbor:"3,keyasint,omitempty"` // the signer's key, when its peer ID does not embed it
}

// x25519Len is the length of an X25519 public key.
const x25519Len = 32

// Check validates a join statement's fields.
func (s *JoinStatement) Check() error {
	switch {
	case s.Round == "" || len(s.Round) > maxRoundLen:
		return fmt.Errorf("%w: round ID of %d bytes", ErrMalformed, len(s.Round))
	case len(s.Keys.Seal) != x25519Len || len(s.Keys.Mask) != x25519Len:
		return fmt.Errorf("%w: a join's keys are two %d-byte X25519 keys", ErrMalformed, x25519Len)
	}
	if _, err := peer.Decode(s.Trainer); err != nil {
		return fmt.Errorf("%w: trainer %q is not a peer ID", ErrMalformed, s.Trainer)
	}
	if _, err := peer.Decode(s.Coordinator); err != nil {
		return fmt.Errorf("%w: coordinator %q is not a peer ID", ErrMalformed, s.Coordinator)
	}
	return nil
}

// SignJoin encodes s and signs it with key, the trainer's identity key.
func SignJoin(key crypto.PrivKey, s *JoinStatement) (*Join, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	b, err := wire.Marshal(s)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(append([]byte(joinDomain), b...))
	if err != nil {
		return nil, fmt.Errorf("sign the join: %w", err)
	}
	j := &Join{Statement: b, Sig: sig}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if _, err := id.ExtractPublicKey(); err != nil {
		if j.PubKey, err = crypto.MarshalPublicKey(key.GetPublic()); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// Open decodes the statement and checks that the trainer it names signed it; from, when not
// empty, must be that trainer (the session's authenticated peer).
func (j *Join) Open(from peer.ID) (*JoinStatement, error) {
	var s JoinStatement
	if err := wire.Unmarshal(j.Statement, &s); err != nil {
		return nil, fmt.Errorf("%w: join statement: %v", ErrMalformed, err)
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	signer, _ := peer.Decode(s.Trainer)
	if from != "" && signer != from {
		return nil, fmt.Errorf("%w: the join names %s as the trainer", ErrSignature, s.Trainer)
	}
	pub, err := signer.ExtractPublicKey()
	if err != nil {
		if pub, err = crypto.UnmarshalPublicKey(j.PubKey); err != nil || !signer.MatchesPublicKey(pub) {
			return nil, fmt.Errorf("%w: no public key for %s", ErrSignature, signer)
		}
	}
	if ok, err := pub.Verify(append([]byte(joinDomain), j.Statement...), j.Sig); err != nil || !ok {
		return nil, fmt.Errorf("%w: the join of %s", ErrSignature, signer)
	}
	return &s, nil
}

// Roster is the coordinator's list of a secure round's members, as each signed its Join.
type Roster struct {
	Members []Join        `cbor:"1,keyasint"` // in roster index order
	Params  secagg.Params `cbor:"2,keyasint"`
	Dim     uint64        `cbor:"3,keyasint"` // coordinates of the input vector
	Self    int           `cbor:"4,keyasint"` // the recipient's index
}

// Check validates a roster's shape (the trainer then opens every member's Join).
func (r *Roster) Check() error {
	switch {
	case len(r.Members) < 2 || len(r.Members) > MaxSecureTrainers:
		return fmt.Errorf("%w: a roster of %d members (2 to %d)", ErrMalformed, len(r.Members), MaxSecureTrainers)
	case r.Self < 0 || r.Self >= len(r.Members):
		return fmt.Errorf("%w: index %d outside the roster", ErrMalformed, r.Self)
	case r.Dim == 0 || r.Dim > MaxDim:
		return fmt.Errorf("%w: dimension %d (1 to %d)", ErrMalformed, r.Dim, MaxDim)
	}
	return nil
}

// Open checks every member's Join (signed by the trainer it names, for round and coordinator,
// no trainer twice) and returns the statements in roster order.
func (r *Roster) Open(round string, coordinator peer.ID) ([]JoinStatement, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	out := make([]JoinStatement, len(r.Members))
	seen := make(map[string]bool, len(r.Members))
	for i := range r.Members {
		st, err := r.Members[i].Open("")
		if err != nil {
			return nil, fmt.Errorf("roster member %d: %w", i, err)
		}
		if st.Round != round || st.Coordinator != coordinator.String() {
			return nil, fmt.Errorf("%w: roster member %d joined round %s of %s", ErrSignature, i, st.Round, st.Coordinator)
		}
		if seen[st.Trainer] {
			return nil, fmt.Errorf("%w: %s is in the roster twice", ErrMalformed, st.Trainer)
		}
		seen[st.Trainer] = true
		out[i] = *st
	}
	return out, nil
}

// Shares are sealed shares: a trainer's for its neighbours (Up), or those routed to it (Down).
type Shares struct {
	Sealed []secagg.Sealed `cbor:"1,keyasint"`
}

// Check bounds the shares.
func (s *Shares) Check() error {
	if len(s.Sealed) > MaxSecureTrainers {
		return fmt.Errorf("%w: %d sealed shares", ErrMalformed, len(s.Sealed))
	}
	for _, b := range s.Sealed {
		if b.From < 0 || b.To < 0 || b.From >= MaxSecureTrainers || b.To >= MaxSecureTrainers || len(b.Box) == 0 || len(b.Box) > maxBox {
			return fmt.Errorf("%w: a sealed share %d→%d of %d bytes", ErrMalformed, b.From, b.To, len(b.Box))
		}
	}
	return nil
}

// InputHeader announces a masked input: Coords uint64 little-endian follow in raw chunks.
type InputHeader struct {
	Coords uint64 `cbor:"1,keyasint"`
}

// Unmask is the coordinator's unmask request: roster indices of the survivors and the dropped.
type Unmask struct {
	Survivors []int `cbor:"1,keyasint"`
	Dropped   []int `cbor:"2,keyasint,omitempty"`
}

// Check bounds the request (secagg.Client.Unmask judges its content).
func (u *Unmask) Check() error {
	if len(u.Survivors)+len(u.Dropped) > 2*MaxSecureTrainers {
		return fmt.Errorf("%w: an unmask request naming %d trainers", ErrMalformed, len(u.Survivors)+len(u.Dropped))
	}
	for _, list := range [][]int{u.Survivors, u.Dropped} {
		for _, i := range list {
			if i < 0 || i >= MaxSecureTrainers {
				return fmt.Errorf("%w: index %d in an unmask request", ErrMalformed, i)
			}
		}
	}
	return nil
}

// Reveals are a survivor's answer to an unmask request.
type Reveals struct {
	Reveals []secagg.Reveal `cbor:"1,keyasint"`
}

// Check bounds the reveals.
func (r *Reveals) Check() error {
	if len(r.Reveals) > MaxSecureTrainers {
		return fmt.Errorf("%w: %d reveals", ErrMalformed, len(r.Reveals))
	}
	for _, v := range r.Reveals {
		if v.Of < 0 || v.Of >= MaxSecureTrainers || len(v.Share) == 0 || len(v.Share) > maxShare {
			return fmt.Errorf("%w: a reveal of %d with %d bytes", ErrMalformed, v.Of, len(v.Share))
		}
	}
	return nil
}

// Outcome ends a secure round's dialogue: whether the trainer's input is in the aggregate, the
// new version, the round's contributors and dropouts, or why the round failed.
type Outcome struct {
	Contributed  bool     `cbor:"1,keyasint,omitempty"`
	NewModel     []byte   `cbor:"2,keyasint,omitempty"` // ModelID of the new version
	Contributors []string `cbor:"3,keyasint,omitempty"` // peer IDs
	Dropouts     []string `cbor:"4,keyasint,omitempty"` // peer IDs
	Error        string   `cbor:"5,keyasint,omitempty"` // why the round failed
}

// Check bounds the outcome.
func (o *Outcome) Check() error {
	switch {
	case o.NewModel != nil && len(o.NewModel) != 32:
		return fmt.Errorf("%w: new model of %d bytes", ErrMalformed, len(o.NewModel))
	case len(o.Contributors) > MaxSecureTrainers || len(o.Dropouts) > MaxSecureTrainers:
		return fmt.Errorf("%w: an outcome naming too many trainers", ErrMalformed)
	case len(o.Error) > maxOutcomeError:
		return fmt.Errorf("%w: an outcome's error of %d bytes", ErrMalformed, len(o.Error))
	}
	for _, p := range append(append([]string{}, o.Contributors...), o.Dropouts...) {
		if len(p) > maxPeerIDLen {
			return fmt.Errorf("%w: a peer ID of %d bytes", ErrMalformed, len(p))
		}
	}
	return nil
}

// Up is a message from trainer to coordinator: exactly one field set, or none (a keepalive).
type Up struct {
	Join    *Join        `cbor:"1,keyasint,omitempty"`
	Shares  *Shares      `cbor:"2,keyasint,omitempty"`
	Input   *InputHeader `cbor:"3,keyasint,omitempty"`
	Reveals *Reveals     `cbor:"4,keyasint,omitempty"`
}

// Down is a message from coordinator to trainer: exactly one field set, or none (a keepalive).
type Down struct {
	Receipt *Receipt `cbor:"1,keyasint,omitempty"`
	Roster  *Roster  `cbor:"2,keyasint,omitempty"`
	Shares  *Shares  `cbor:"3,keyasint,omitempty"`
	Unmask  *Unmask  `cbor:"4,keyasint,omitempty"`
	Outcome *Outcome `cbor:"5,keyasint,omitempty"`
}

// keepalive is the encoding of an empty Up or Down.
var keepalive = []byte{0xa0}

// IsKeepalive reports whether b is a keepalive message.
func IsKeepalive(b []byte) bool { return bytes.Equal(b, keepalive) }

func count(set ...bool) int {
	n := 0
	for _, b := range set {
		if b {
			n++
		}
	}
	return n
}

// DecodeUp decodes and checks an Up that is not a keepalive.
func DecodeUp(b []byte) (*Up, error) {
	var u Up
	if err := wire.Unmarshal(b, &u); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if count(u.Join != nil, u.Shares != nil, u.Input != nil, u.Reveals != nil) != 1 {
		return nil, fmt.Errorf("%w: a secagg message must carry exactly one part", ErrMalformed)
	}
	switch {
	case u.Join != nil && (len(u.Join.Statement) == 0 || len(u.Join.Sig) == 0):
		return nil, fmt.Errorf("%w: a join without statement or signature", ErrMalformed)
	case u.Shares != nil:
		return &u, u.Shares.Check()
	case u.Input != nil && (u.Input.Coords == 0 || u.Input.Coords > MaxDim+1):
		return nil, fmt.Errorf("%w: a masked input of %d coordinates", ErrMalformed, u.Input.Coords)
	case u.Reveals != nil:
		return &u, u.Reveals.Check()
	}
	return &u, nil
}

// DecodeDown decodes and checks a Down that is not a keepalive.
func DecodeDown(b []byte) (*Down, error) {
	var d Down
	if err := wire.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if count(d.Receipt != nil, d.Roster != nil, d.Shares != nil, d.Unmask != nil, d.Outcome != nil) != 1 {
		return nil, fmt.Errorf("%w: a secagg message must carry exactly one part", ErrMalformed)
	}
	switch {
	case d.Roster != nil:
		return &d, d.Roster.Check()
	case d.Shares != nil:
		return &d, d.Shares.Check()
	case d.Unmask != nil:
		return &d, d.Unmask.Check()
	case d.Outcome != nil:
		return &d, d.Outcome.Check()
	}
	return &d, nil
}
