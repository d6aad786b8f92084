package kex

import (
	"errors"
	"time"
)

// ID is the protocol ID.
const ID = "/califusion/kex/1.0.0"

// Limits of the protocol.
const (
	MaxPurposeLen    = 64
	MaxHandshakeMsg  = 512
	MaxFramePayload  = 1 << 20
	maxFrameCipher   = MaxFramePayload + 1 + 16
	HandshakeTimeout = 10 * time.Second
	ReplayWindow     = 10 * time.Minute
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
