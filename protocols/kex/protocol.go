package kex

import (
	"errors"
	"time"
)

// ID is the protocol ID.
const ID = "/califusion/kex/1.0.0"

// ServiceName is the resource-manager service every accepted kex stream is attached to.
const ServiceName = "califusion.kex"

// Limits of the protocol.
const (
	MaxPurposeLen   = 64
	MaxHandshakeMsg = 512
	MaxFramePayload = 1 << 20
	maxFrameCipher  = MaxFramePayload + 1 + 16
	// StreamTimeout is the deadline on a stream, dialled or accepted, until its handshake
	// completes; the session limits below bound it after that.
	StreamTimeout = 10 * time.Second
	ReplayWindow  = 10 * time.Minute
)

// Session limits (doc.go "Limits"). A server takes its own values from Options; these are the
// defaults.
const (
	// IdleTimeout is how long an accepted session waits for the peer in one Recv or Send
	// (per frame), whatever the handler's ctx says.
	IdleTimeout = 30 * time.Second
	// DialIdleTimeout is the same bound on a dialled session: longer, because the initiator
	// waits while the responder works on its request (verifies a payment or an update).
	DialIdleTimeout = 2 * time.Minute
	// SessionLifetime bounds an accepted session from its first byte to its end.
	SessionLifetime = 30 * time.Minute
	// MaxSessionsPerPeer is how many sessions (handshakes included) one remote peer may hold
	// open on a server at once; the next one is reset before its Hello is read.
	MaxSessionsPerPeer = 8
	// MaxSessions is how many sessions a server holds open in total.
	MaxSessions = 256
	// handshakeMemory is what an accepted stream reserves from the resource manager before it
	// reads anything; a session then reserves its frame buffer as it grows (up to one frame),
	// so idle sessions hold almost nothing.
	handshakeMemory = 2 * MaxHandshakeMsg
)

// Errors a session can end with.
var (
	ErrBadSignature   = errors.New("kex: peer's signature does not verify")
	ErrPeerMismatch   = errors.New("kex: peer key does not match its peer ID")
	ErrReplay         = errors.New("kex: replayed handshake")
	ErrUnknownPurpose = errors.New("kex: no handler for this purpose")
	ErrTampered       = errors.New("kex: frame does not authenticate (tampered, replayed or reordered)")
	ErrTooLarge       = errors.New("kex: message exceeds the receiver's limit")
	ErrHandshake      = errors.New("kex: malformed handshake")
	ErrClosed         = errors.New("kex: session closed")
	ErrIdle           = errors.New("kex: peer idle for longer than the session's idle timeout")
	ErrExpired        = errors.New("kex: session outlived its lifetime")
	ErrBusy           = errors.New("kex: too many sessions open (for this peer or in total)")
)

type hello struct {
	Purpose string `cbor:"1,keyasint"`
	Eph     []byte `cbor:"2,keyasint"`
	Nonce   []byte `cbor:"3,keyasint"`
}

type reply struct {
	Eph   []byte `cbor:"1,keyasint"`
	Nonce []byte `cbor:"2,keyasint"`
	Sig   []byte `cbor:"3,keyasint"`
}

type finish struct {
	Sig []byte `cbor:"1,keyasint"`
}

func (h *hello) check() error {
	if h.Purpose == "" || len(h.Purpose) > MaxPurposeLen || len(h.Eph) != 32 || len(h.Nonce) != 32 {
		return ErrHandshake
	}
	return nil
}

func (r *reply) check() error {
	if len(r.Eph) != 32 || len(r.Nonce) != 32 || len(r.Sig) == 0 || len(r.Sig) > 256 {
		return ErrHandshake
	}
	return nil
}
