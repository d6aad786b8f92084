// Package secagg is secure aggregation after SecAgg+ (Bell, Bonawitz, Gascón, Lepoint, Raykova,
// "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead", CCS 2020): a server learns
// the sum of the clients' vectors and nothing else about any one of them, and the sum survives
// clients that drop out, up to a threshold. It is the pure protocol: state machines for one client
// and for the server, no network, no identities (the caller signs and routes the messages,
// node/rounds over kex sessions).
//
// A round runs in four steps over a roster of n clients, each known by its index in the roster:
//
//  1. Advertise: each client makes two X25519 key pairs (Keys: one to seal shares, one to agree
//     masks) and sends the public halves; the server collects them into the roster.
//  2. ShareKeys: each client picks a self-mask seed b, Shamir-splits b and its mask secret key
//     into shares for its neighbours (a k-regular graph over the roster, derived from the roster
//     itself: Neighbours), seals each neighbour's pair of shares to that neighbour, and the server
//     routes them.
//  3. MaskedInput: each client that received shares quantises its vector (clamped, fixed-point,
//     times its weight, the weight appended as the last coordinate), adds PRG(b) and, for each
//     neighbour j that sent it shares, ±PRG(s_ij) where s_ij is their agreed mask seed, and sends
//     the result, all modulo 2^64.
//  4. Unmask: the server names the survivors (sent a masked input) and the dropped (shared keys
//     but sent no input); each survivor reveals, for each neighbour, the share of b if that
//     neighbour survived or the share of its mask key if it dropped, never both, and the server
//     removes the masks: the sum of the survivors' weighted vectors remains.
//
// Parameters (Params) fix the graph degree, the reconstruction threshold, the clipping range,
// the fixed-point precision and the largest weight; Params.Check refuses combinations that could
// overflow the ring or leak an individual input.
//
// Primitives: X25519 (crypto/ecdh) for both key pairs; HKDF-SHA256 with the round ID as salt for
// the pairwise mask seeds (info "califusion/secagg/v1 mask" ‖ min(i,j) ‖ max(i,j)) and the seal
// keys (info "califusion/secagg/v1 seal" ‖ from ‖ to); AES-256-GCM for the boxes (SealedSize
// bytes, the round and both indices as additional data); AES-256-CTR as the PRG, one
// little-endian uint64 per coordinate. Client i adds +PRG(s_ij) for j > i and −PRG(s_ij) for
// j < i, and +PRG(b_i). Shamir shares are over GF(2^8) (node/internal/shamir); client i's share
// for neighbour j sits at x = j's place in N(i) + 1.
//
// Precision: Mean is within QuantisationBound of the exact weighted mean of the clamped inputs:
// 2^−(Bits+1) from the fixed-point grid plus the float32 rounding of the result. A sum that an
// uncancelled mask corrupted almost surely has a coordinate beyond W·Clip·2^Bits, which Mean
// refuses; wrong revealed shares are caught by Sum when more than Threshold were revealed, and a
// wrong mask key always (it is checked against the advertised Mask key).
package secagg

import (
	"errors"
)

// Errors of the protocol. Every refusal wraps one of them.
var (
	ErrParams    = errors.New("secagg: invalid parameters")
	ErrRoster    = errors.New("secagg: invalid roster")
	ErrMessage   = errors.New("secagg: invalid message")   // wrong sender, recipient, length or seal
	ErrDuplicate = errors.New("secagg: duplicate message") // a second message of one kind from one client
	ErrPhase     = errors.New("secagg: message out of phase")
	ErrUnmask    = errors.New("secagg: refused to unmask")      // a client refusing a request that would reveal an input
	ErrTooFew    = errors.New("secagg: too few clients remain") // below the threshold: no sum
)

// Params are a secure round's parameters: the coordinator announces them in the round and every
// client checks them.
type Params struct {
	// Neighbours is k, the degree of the masking graph: each client shares with and masks
	// against k others. 0 (or ≥ n−1) means every other client (the original SecAgg).
	Neighbours int `cbor:"1,keyasint"`
	// Threshold is t: a client's secrets are split into k shares of which t reconstruct them. A
	// round fails when some needed secret has fewer than t revealed shares. It must exceed k/2, so
	// that the server cannot collect both secrets of one client.
	Threshold int `cbor:"2,keyasint"`
	// Clip clamps every coordinate to [−Clip, Clip] before quantisation.
	Clip float64 `cbor:"3,keyasint"`
	// Bits is the fixed-point precision: x becomes round(x·2^Bits).
	Bits int `cbor:"4,keyasint"`
	// MaxWeight clamps a client's weight (its sample count) to 1..MaxWeight.
	MaxWeight uint64 `cbor:"5,keyasint"`
}

// Keys are a client's two public keys for a round (X25519): Seal receives sealed shares, Mask
// agrees pairwise mask seeds.
type Keys struct {
	Seal []byte `cbor:"1,keyasint"`
	Mask []byte `cbor:"2,keyasint"`
}

// Sealed is one client's shares for one neighbour, sealed to it (AEAD under a key both derive
// from their Seal keys; the round and both indices are bound in).
type Sealed struct {
	From int    `cbor:"1,keyasint"`
	To   int    `cbor:"2,keyasint"`
	Box  []byte `cbor:"3,keyasint"`
}

// Reveal is one survivor's share of a neighbour's secret in the Unmask step: of its self-mask
// seed (Of survived) or of its mask key (Of dropped).
type Reveal struct {
	Of    int    `cbor:"1,keyasint"`
	Share []byte `cbor:"2,keyasint"` // the Shamir share's Y; its X is the revealer's place among Of's neighbours
}
