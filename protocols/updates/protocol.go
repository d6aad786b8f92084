// Package updates carries training updates from trainers to a round's coordinator over
// authenticated kex sessions (shared/ARCHITECTURE.md §1 "Train, submit, aggregate"):
//
//	submit  trainer → coordinator  Submit{round, samples, sha256, update}  → Receipt
//	round   any     → coordinator  Query{round}                            → Receipt{round}
//
// The update is a safetensors file; it travels inside the session, so only the coordinator sees
// it. A Receipt's Code is the admin API error code (shared/API.md): 0 accepted, 1007 rejected by a
// verification rule named in Reason, 1010 a duplicate or a closed round, and so on, so the trainer
// reports the coordinator's answer unchanged. Each message is one CBOR value in one session
// message (kex fragments and authenticates it); the receiver caps its size.
package updates

import (
	"context"
	"crypto/sha256"
	"errors"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Session purposes.
const (
	PurposeSubmit = "updates/submit/1"
	PurposeRound  = "updates/round/1"
)

// MaxReceipt caps a receipt (and a query).
const MaxReceipt = 16 << 10

// Submit hands an update to the coordinator of a round.
type Submit struct {
	Round   string `cbor:"1,keyasint"`
	Samples uint64 `cbor:"2,keyasint"`
	SHA256  []byte `cbor:"3,keyasint"` // of Update; the coordinator recomputes it
	Update  []byte `cbor:"4,keyasint"` // safetensors
}

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
}

// Error is a refusal carried back from the coordinator.
type Error struct {
	Code    int
	Message string
	Reason  string
	Norm    float64
}

func (e *Error) Error() string { return e.Message }

// ErrHash is returned when a submission's bytes do not hash to its declared SHA-256.
var ErrHash = errors.New("update does not match its SHA-256")

// NewSubmit builds the submission of an update file.
func NewSubmit(round string, samples uint64, update []byte) *Submit {
	sum := sha256.Sum256(update)
	return &Submit{Round: round, Samples: samples, SHA256: sum[:], Update: update}
}

// Verify checks the declared hash against the bytes.
func (s *Submit) Verify() error {
	if sum := sha256.Sum256(s.Update); len(s.SHA256) != len(sum) || string(sum[:]) != string(s.SHA256) {
		return ErrHash
	}
	return nil
}

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
