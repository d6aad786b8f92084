// Package updates carries training updates from trainers to a round's coordinator over
// authenticated kex sessions (shared/ARCHITECTURE.md §1 "Train, submit, aggregate"):
//
//	submit  trainer → coordinator  Header{statement, sig}       → Receipt (go or refusal)
//	        trainer → coordinator  body, in messages of ≤ BodyChunk bytes  → Receipt
//	round   any     → coordinator  Query{round}                 → Receipt{round}
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
// The update travels inside the session, so only the coordinator sees it. A Receipt's Code is the
// admin API error code (shared/API.md): 0 accepted, 1007 rejected by a verification rule named in
// Reason, 1010 a duplicate or a closed round, and so on, so the trainer reports the coordinator's
// answer unchanged. Each message is one CBOR value in one session message (kex fragments and
// authenticates it); the receiver caps its size. updates/submit/1, which sent the whole update
// in one message, is gone: a coordinator had to buffer it before knowing who sent it.
package updates

import (
	"context"
	"errors"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Session purposes.
const (
	PurposeSubmit = "updates/submit/2"
	PurposeRound  = "updates/round/1"
)

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

// Request opens a session for purpose to p, sends msg and returns the Receipt; a refusal is an
// *Error.
func Request(ctx context.Context, h host.Host, p peer.ID, purpose string, msg any) (*Receipt, error) {
	var r Receipt
	if err := kex.Call(ctx, h, p, purpose, msg, &r, MaxReceipt); err != nil {
		return nil, err
	}
	if r.Code != 0 {
		return nil, &Error{Code: r.Code, Message: r.Message, Reason: r.Reason, Norm: r.Norm}
	}
	return &r, nil
}

// Serve registers fn for purpose on a kex server: it reads one message of at most max bytes into
// a fresh M and sends back fn's Receipt. A message that does not decode gets -32602.
func Serve[M any](srv *kex.Server, purpose string, max int, fn func(ctx context.Context, from peer.ID, m *M) *Receipt) {
	kex.Answer(srv, purpose, max, &Receipt{Code: -32602, Message: "malformed request"}, fn)
}
