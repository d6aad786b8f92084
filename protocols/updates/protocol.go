// Package updates carries training updates from trainers to a round's coordinator over
// authenticated kex sessions (shared/ARCHITECTURE.md §1 "Train, submit, aggregate"):
//
//	submit  trainer → coordinator  Header{statement, sig}       → Receipt (go or refusal)
//	        trainer → coordinator  body, in messages of ≤ BodyChunk bytes  → Receipt
//	round   any     → coordinator  Query{round}                 → Receipt{round}
//	report  trainer → coordinator  Query{round}                 → Receipt{report}
//	secagg  trainer ↔ coordinator  a secure round's SecAgg+ dialogue (secagg.go, updates/secagg/1)
//
// # Submit (updates/submit/2)
//
// The trainer first sends a small Header: a Statement (round, samples, SHA-256 and size of the
// update, trainer and coordinator peer IDs) in its CBOR form, and the trainer's identity-key
// signature over "califusion/updates/submit/v2" ‖ statement. The coordinator decides from the
// header alone whether it wants the update (the signature verifies, the round is open, the
// trainer may submit, the size and the sample count are within the round's bounds) and answers
// with a Receipt: Go set, or a refusal. A refused trainer's body is never read: a refusal costs
// the coordinator at most MaxHeader bytes. After Go the trainer sends exactly Size bytes of
// safetensors as a sequence of session messages, each 1..BodyChunk bytes; the coordinator
// spools them to a 0600 file through a reader capped at Size, hashing as it goes, then checks
// the hash, verifies the file and answers with the final Receipt. The signed statement is the
// coordinator's proof of what the trainer claimed (its sample count above all).
//
// # Report (updates/report/1)
//
// A trainer asks the coordinator of a round it submitted to for its report: the Query names the
// round, the answer's Report holds the trainer's own verdict (samples, norm, accepted, reason,
// clipped, hash), the new version, the aggregate metrics and the anchors that concern it (its
// update's, the aggregate's, the new manifest's) and, once a campaign paid the trainer for the
// round, its Reward (amount, ledger block, payer: a claim the trainer checks on the ledger),
// within the bounds of Report.Check, so it fits in MaxReceipt. The coordinator answers only a peer that submitted to the round (others: 1009
// role), and only once the round ended with an aggregate (before: 1001 not_found).
//
// The update travels inside the session, so only the coordinator sees it. A Receipt's Code is a
// protocols/apierr code (the admin API's, shared/API.md): 0 accepted, 1007 rejected by a
// verification rule named in Reason, 1010 a duplicate or a closed round, and so on, so the
// trainer reports the coordinator's answer unchanged. Each message is one CBOR value in one
// session message (kex fragments and authenticates it); the receiver caps its size. updates/submit/1, which sent the whole update
// in one message, is gone: a coordinator had to buffer it before knowing who sent it.
package updates

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Session purposes: an updates exchange is a kex session opened for one of them (they play the
// part of a protocol ID).
const (
	PurposeSubmit = "updates/submit/2"
	PurposeRound  = "updates/round/1"
)

// ServiceName is the resource-manager service updates sessions are accounted to: they travel on
// kex streams, attached to kex's service.
const ServiceName = kex.ServiceName

// Limits of the protocol.
const (
	// MaxReceipt caps a receipt (and a query).
	MaxReceipt = 16 << 10
	// MaxHeader caps a submission's header: all a coordinator reads before it decides.
	MaxHeader = 4 << 10
	// BodyChunk is the largest message of a submission's body (one kex frame).
	BodyChunk = kex.MaxFramePayload
	// maxRoundLen bounds a statement's round ID (IDs are 32 hex characters).
	maxRoundLen = 64
	// StreamTimeout bounds one exchange on the client (Submit and Request use the earlier of it
	// and their ctx's deadline): a submission with its body, or a query.
	StreamTimeout = 5 * time.Minute
)

// Query asks a coordinator for the current state of a round.
type Query struct {
	Round string `cbor:"1,keyasint"`
}

// Receipt answers either message; Code 0 is success.
type Receipt struct {
	Code    int     `cbor:"1,keyasint,omitempty"`
	Message string  `cbor:"2,keyasint,omitempty"`
	Reason  string  `cbor:"3,keyasint,omitempty"` // the failed rule of a rejected update
	Norm    float64 `cbor:"4,keyasint,omitempty"` // L2 norm of the update's delta
	Clipped bool    `cbor:"5,keyasint,omitempty"` // the delta was scaled down to the bound
	Anchor  string  `cbor:"6,keyasint,omitempty"` // kv-store key of the update's commitment
	Round   []byte  `cbor:"7,keyasint,omitempty"` // encoded announce.Round, for a Query
	Go      bool    `cbor:"8,keyasint,omitempty"` // answer to a Header: send the body
	Report  *Report `cbor:"9,keyasint,omitempty"` // a trainer's report, for a report Query
}

// Error is a refusal carried back from the coordinator.
type Error struct {
	Code    int
	Message string
	Reason  string
	Norm    float64
}

func (e *Error) Error() string { return e.Message }

// Errors of a submission.
var (
	ErrHash      = errors.New("update does not match its SHA-256")
	ErrSignature = errors.New("the submission's statement is not signed by the submitting peer")
	ErrMalformed = errors.New("malformed submission header")
	ErrBody      = errors.New("the submission's body does not match its declared size")
)

// statementDomain prefixes the bytes a trainer signs.
const statementDomain = "califusion/updates/submit/v2"

// Statement is what a trainer claims about an update it submits, signed with its identity key.
type Statement struct {
	Round       string `cbor:"1,keyasint"`
	Samples     uint64 `cbor:"2,keyasint"` // training samples the update was computed from
	SHA256      []byte `cbor:"3,keyasint"` // of the update file
	Size        uint64 `cbor:"4,keyasint"` // bytes of the update file
	Trainer     string `cbor:"5,keyasint"` // peer ID of the signer
	Coordinator string `cbor:"6,keyasint"` // peer ID the update is for, so it cannot be replayed elsewhere
}

// Header opens a submission: the statement as signed, and the signature.
type Header struct {
	Statement []byte `cbor:"1,keyasint"`           // CBOR of a Statement
	Sig       []byte `cbor:"2,keyasint"`           // over statementDomain ‖ Statement
	PubKey    []byte `cbor:"3,keyasint,omitempty"` // the signer's key, when its peer ID does not embed it
}

// Check validates a statement's fields (not the claims, which the coordinator judges).
func (s *Statement) Check() error {
	switch {
	case s.Round == "" || len(s.Round) > maxRoundLen:
		return fmt.Errorf("%w: round ID of %d bytes", ErrMalformed, len(s.Round))
	case len(s.SHA256) != sha256.Size:
		return fmt.Errorf("%w: a SHA-256 has 32 bytes, not %d", ErrMalformed, len(s.SHA256))
	case s.Size == 0:
		return fmt.Errorf("%w: empty update", ErrMalformed)
	}
	if _, err := peer.Decode(s.Trainer); err != nil {
		return fmt.Errorf("%w: trainer %q is not a peer ID", ErrMalformed, s.Trainer)
	}
	if _, err := peer.Decode(s.Coordinator); err != nil {
		return fmt.Errorf("%w: coordinator %q is not a peer ID", ErrMalformed, s.Coordinator)
	}
	return nil
}

// Sign encodes s and signs it with key, the trainer's identity key.
func Sign(key crypto.PrivKey, s *Statement) (*Header, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	b, err := wire.Marshal(s)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(append([]byte(statementDomain), b...))
	if err != nil {
		return nil, fmt.Errorf("sign the submission: %w", err)
	}
	h := &Header{Statement: b, Sig: sig}
	if id, err := peer.IDFromPrivateKey(key); err != nil {
		return nil, err
	} else if _, err := id.ExtractPublicKey(); err != nil {
		if h.PubKey, err = crypto.MarshalPublicKey(key.GetPublic()); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Open decodes the statement of a header received from from and checks that from signed it and
// names itself as the trainer; the same check proves the claim to a third party later.
func (h *Header) Open(from peer.ID) (*Statement, error) {
	var s Statement
	if err := wire.Unmarshal(h.Statement, &s); err != nil {
		return nil, fmt.Errorf("%w: statement: %v", ErrMalformed, err)
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	if s.Trainer != from.String() {
		return nil, fmt.Errorf("%w: it names %s as the trainer", ErrSignature, s.Trainer)
	}
	pub, err := from.ExtractPublicKey()
	if err != nil {
		if pub, err = crypto.UnmarshalPublicKey(h.PubKey); err != nil || !from.MatchesPublicKey(pub) {
			return nil, fmt.Errorf("%w: no public key for %s", ErrSignature, from)
		}
	}
	if ok, err := pub.Verify(append([]byte(statementDomain), h.Statement...), h.Sig); err != nil || !ok {
		return nil, ErrSignature
	}
	return &s, nil
}
