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

// DefaultParams returns the defaults for a round of about n clients: k = the smallest even
// number ≥ 2·log2(n) (at most n−1), t = ⌊k/2⌋+1, Clip 1, Bits 24, MaxWeight 100000.
func DefaultParams(n int) Params { panic("secagg: not implemented") }

// Check validates p for a roster of n clients: 2 ≤ n, k/2 < t ≤ k, the ring cannot overflow
// (n·MaxWeight·Clip·2^Bits < 2^62), Bits in 1..40, Clip finite and > 0.
func (p Params) Check(n int) error { panic("secagg: not implemented") }

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

// Neighbours returns the neighbours of client i (sorted indices, i excluded) in the round's
// masking graph over a roster of n clients with degree k, seeded by seed (the server and every
// client derive seed from the roster: RosterSeed).
func Neighbours(n, k, i int, seed [32]byte) []int { panic("secagg: not implemented") }

// RosterSeed is the graph seed of a roster: SHA-256 over the round ID and every client's keys in
// order, so no one picks the graph.
func RosterSeed(round []byte, roster []Keys) [32]byte { panic("secagg: not implemented") }

// Client is one client's side of a round. Its methods must be called in order, each once.
type Client struct{}

// NewClient makes a client's keys for round (its ID, bound into every derived key and seal).
// rnd is the randomness (crypto/rand.Reader outside tests).
func NewClient(p Params, round []byte, rnd interface{ Read([]byte) (int, error) }) (*Client, error) {
	panic("secagg: not implemented")
}

// Keys returns the client's public keys, to advertise.
func (c *Client) Keys() Keys { panic("secagg: not implemented") }

// ShareKeys takes the roster the server sent (already checked by the caller: each entry signed
// by its client) and this client's index in it, and returns one Sealed for each neighbour.
// It refuses a roster that does not hold this client's keys at self, or with fewer than
// Threshold+1 clients.
func (c *Client) ShareKeys(roster []Keys, self int) ([]Sealed, error) {
	panic("secagg: not implemented")
}

// MaskedInput takes the shares routed to this client (To == self; a neighbour that sent none is
// not masked against), the input vector and the weight, and returns the masked vector of
// len(x)+1 coordinates. It refuses shares that do not open or come from a non-neighbour.
func (c *Client) MaskedInput(shares []Sealed, x []float32, weight uint64) ([]uint64, error) {
	panic("secagg: not implemented")
}

// Unmask answers the server's unmask request: survivors and dropped are disjoint sets of
// indices. It reveals, for each neighbour that shared keys with this client, the share the sets
// call for; it refuses (ErrUnmask) a request that names a client in both sets, names this client
// as dropped, has fewer than Threshold survivors, or comes a second time.
func (c *Client) Unmask(survivors, dropped []int) ([]Reveal, error) { panic("secagg: not implemented") }

// Server is the server's side of a round: it routes shares, sums masked inputs as they arrive
// (memory: one vector) and removes the masks.
type Server struct{}

// NewServer starts the server's side for a roster (the advertised keys in index order) of a
// round, for input vectors of length dim (masked inputs have dim+1 coordinates).
func NewServer(p Params, round []byte, roster []Keys, dim int) (*Server, error) {
	panic("secagg: not implemented")
}

// AddShares records client from's sealed shares (one per neighbour, From == from); a second call
// for the same client or a call after the first masked input is refused.
func (s *Server) AddShares(from int, sealed []Sealed) error { panic("secagg: not implemented") }

// SharesFor returns the sealed shares addressed to client to (call once every client that will
// has shared keys).
func (s *Server) SharesFor(to int) []Sealed { panic("secagg: not implemented") }

// AddInput folds client from's masked input into the running sum: refused if from did not share
// keys, sent one already, the length is not dim+1, or unmasking has begun.
func (s *Server) AddInput(from int, y []uint64) error { panic("secagg: not implemented") }

// Unmasking closes the inputs and returns the request every survivor answers: the survivors
// (sent an input) and the dropped (shared keys, sent no input). ErrTooFew if fewer than
// Threshold clients sent inputs.
func (s *Server) Unmasking() (survivors, dropped []int, err error) { panic("secagg: not implemented") }

// AddReveals records a survivor's reveals (refused from a non-survivor, twice, or for a client
// that is not its neighbour).
func (s *Server) AddReveals(from int, reveals []Reveal) error { panic("secagg: not implemented") }

// Sum removes the masks and returns the sum of the survivors' weighted, quantised vectors (dim+1
// coordinates, the last the total weight). ErrTooFew names a secret with fewer than Threshold
// reveals.
func (s *Server) Sum() ([]uint64, error) { panic("secagg: not implemented") }

// Mean turns a Sum into the weighted mean vector and the total weight.
func Mean(p Params, sum []uint64) ([]float32, uint64, error) { panic("secagg: not implemented") }

// QuantisationBound is the most one coordinate of Mean can differ from the exact weighted mean
// of the clamped inputs.
func QuantisationBound(p Params) float64 { panic("secagg: not implemented") }
