package secagg

import (
	"bytes"
	"crypto/ecdh"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/califusion/califusion/node/internal/shamir"
)

// Client phases: each method moves the client one step.
const (
	clientAdvertised = iota // keys made, waiting for the roster
	clientShared            // shares sealed, waiting for the neighbours' shares
	clientMasked            // masked input sent, waiting for the unmask request
	clientDone              // answered (or refused) the unmask request: all secrets wiped
)

// Client is one client's side of a round. Its methods must be called in order, each once.
//
// A refused ShareKeys or MaskedInput leaves the client where it was (nothing was sent, so the
// caller may retry with a corrected input); any Unmask call after MaskedInput, answered or
// refused, is the last. Secrets are wiped as soon as they are no longer needed. It is safe for
// concurrent use, though the protocol has no use for it.
type Client struct {
	mu    sync.Mutex
	p     Params
	round []byte
	rnd   io.Reader
	phase int

	sealPriv, maskPriv []byte // 32-byte X25519 scalars; wiped after ShareKeys
	keys               Keys

	// Set by ShareKeys.
	n, self  int
	nbrs     []int    // N(self), sorted
	myX      []byte   // myX[a]: this client's share X among nbrs[a]'s neighbours
	openKeys [][]byte // openKeys[a]: AEAD key of the box nbrs[a] → self; wiped by MaskedInput
	seeds    [][]byte // seeds[a]: s_{self,nbrs[a]}; wiped by MaskedInput
	b        []byte   // self-mask seed; wiped by MaskedInput

	// Set by MaskedInput: the shares received from each neighbour (nil: none); wiped by Unmask.
	gotB, gotM [][]byte
}

// NewClient makes a client's keys for round (its ID, bound into every derived key and seal).
// rnd is the randomness (crypto/rand.Reader outside tests).
//
// It checks the parts of p that do not depend on the roster (ShareKeys checks the rest) and
// refuses an empty round ID.
func NewClient(p Params, round []byte, rnd interface{ Read([]byte) (int, error) }) (*Client, error) {
	if err := p.checkCommon(); err != nil {
		return nil, err
	}
	if len(round) == 0 {
		return nil, fmt.Errorf("%w: empty round ID", ErrParams)
	}
	c := &Client{p: p, round: bytes.Clone(round), rnd: rnd}
	var err error
	if c.sealPriv, c.keys.Seal, err = newKey(rnd); err != nil {
		return nil, err
	}
	if c.maskPriv, c.keys.Mask, err = newKey(rnd); err != nil {
		return nil, err
	}
	return c, nil
}

// newKey draws an X25519 key pair from rnd: the 32-byte scalar and the public key.
func newKey(rnd io.Reader) (priv, pub []byte, err error) {
	priv = make([]byte, SecretSize)
	if _, err := io.ReadFull(rnd, priv); err != nil {
		return nil, nil, fmt.Errorf("secagg: random key: %w", err)
	}
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("secagg: X25519 key: %w", err)
	}
	return priv, k.PublicKey().Bytes(), nil
}

// Keys returns the client's public keys, to advertise.
func (c *Client) Keys() Keys {
	return Keys{Seal: bytes.Clone(c.keys.Seal), Mask: bytes.Clone(c.keys.Mask)}
}

// ShareKeys takes the roster the server sent (already checked by the caller: each entry signed
// by its client) and this client's index in it, and returns one Sealed for each neighbour.
// It refuses a roster that does not hold this client's keys at self, or with fewer than
// Threshold+1 clients.
//
// It also refuses (ErrParams) parameters that Check refuses for the roster's size, and
// (ErrRoster) a roster with a key that is not 32 bytes, a key advertised twice, or a neighbour's
// key that gives no X25519 agreement (a low-order point).
func (c *Client) ShareKeys(roster []Keys, self int) ([]Sealed, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.phase != clientAdvertised {
		return nil, fmt.Errorf("%w: ShareKeys called twice or after MaskedInput", ErrPhase)
	}
	n := len(roster)
	if n < c.p.Threshold+1 {
		return nil, fmt.Errorf("%w: %d clients, a round with threshold %d needs at least %d", ErrRoster, n, c.p.Threshold, c.p.Threshold+1)
	}
	if err := c.p.Check(n); err != nil {
		return nil, err
	}
	if self < 0 || self >= n {
		return nil, fmt.Errorf("%w: index %d outside a roster of %d", ErrRoster, self, n)
	}
	if !bytes.Equal(roster[self].Seal, c.keys.Seal) || !bytes.Equal(roster[self].Mask, c.keys.Mask) {
		return nil, fmt.Errorf("%w: roster entry %d does not hold this client's keys", ErrRoster, self)
	}
	if err := checkRosterKeys(roster); err != nil {
		return nil, err
	}
	graph := Graph(n, c.p.Neighbours, RosterSeed(c.round, roster))
	nbrs := graph[self]
	k := len(nbrs)

	sealPriv, _ := ecdh.X25519().NewPrivateKey(c.sealPriv)
	maskPriv, _ := ecdh.X25519().NewPrivateKey(c.maskPriv)
	openKeys := make([][]byte, k)
	seeds := make([][]byte, k)
	myX := make([]byte, k)
	out := make([]Sealed, k)
	wipe := func() {
		for a := range k {
			clear(openKeys[a])
			clear(seeds[a])
		}
	}
	b := make([]byte, SecretSize)
	if _, err := io.ReadFull(c.rnd, b); err != nil {
		return nil, fmt.Errorf("secagg: random self-mask seed: %w", err)
	}
	bShares, err := shamir.Split(b, k, c.p.Threshold, c.rnd)
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("secagg: split the self-mask seed: %w", err)
	}
	mShares, err := shamir.Split(c.maskPriv, k, c.p.Threshold, c.rnd)
	if err != nil {
		clear(b)
		wipeShares(bShares)
		return nil, fmt.Errorf("secagg: split the mask key: %w", err)
	}
	defer wipeShares(bShares)
	defer wipeShares(mShares)

	plain := make([]byte, plainSize)
	defer clear(plain)
	for a, j := range nbrs {
		sendKey, err := sealKey(sealPriv, roster[j].Seal, c.round, self, j)
		if err == nil {
			openKeys[a], err = sealKey(sealPriv, roster[j].Seal, c.round, j, self)
		}
		if err == nil {
			seeds[a], err = maskSeed(maskPriv, roster[j].Mask, c.round, self, j)
		}
		if err != nil {
			clear(sendKey)
			clear(b)
			wipe()
			return nil, fmt.Errorf("%w: client %d's keys give no X25519 agreement: %v", ErrRoster, j, err)
		}
		plain[0] = bShares[a].X
		copy(plain[1:], bShares[a].Y)
		plain[1+SecretSize] = mShares[a].X
		copy(plain[2+SecretSize:], mShares[a].Y)
		out[a] = Sealed{From: self, To: j, Box: seal(sendKey, plain, c.round, self, j)}
		clear(sendKey)
		myX[a] = byte(placeOf(graph[j], self) + 1)
	}
	clear(c.sealPriv)
	clear(c.maskPriv)
	c.sealPriv, c.maskPriv = nil, nil
	c.n, c.self, c.nbrs, c.myX, c.openKeys, c.seeds, c.b = n, self, nbrs, myX, openKeys, seeds, b
	c.phase = clientShared
	return out, nil
}

// checkRosterKeys refuses keys that are not 32 bytes and keys advertised twice.
func checkRosterKeys(roster []Keys) error {
	seen := make(map[string]int, 2*len(roster))
	for i, k := range roster {
		for _, key := range [][]byte{k.Seal, k.Mask} {
			if len(key) != 32 {
				return fmt.Errorf("%w: client %d advertises a %d-byte key, want 32", ErrRoster, i, len(key))
			}
			if j, dup := seen[string(key)]; dup {
				return fmt.Errorf("%w: clients %d and %d advertise the same key", ErrRoster, j, i)
			}
			seen[string(key)] = i
		}
	}
	return nil
}

// placeOf is the position of j in the sorted list nbrs, or −1.
func placeOf(nbrs []int, j int) int {
	if a, ok := slices.BinarySearch(nbrs, j); ok {
		return a
	}
	return -1
}

// wipeShares clears the shares' Y.
func wipeShares(s []shamir.Share) {
	for _, sh := range s {
		clear(sh.Y)
	}
}

// MaskedInput takes the shares routed to this client (To == self; a neighbour that sent none is
// not masked against), the input vector and the weight, and returns the masked vector of
// len(x)+1 coordinates. It refuses shares that do not open or come from a non-neighbour.
//
// Refusals: ErrMessage for a box addressed to another client, from a non-neighbour, of the wrong
// length, that does not open, or whose share X is not this client's place among the sender's
// neighbours, an empty x or a NaN coordinate; ErrDuplicate for two boxes from one client.
func (c *Client) MaskedInput(shares []Sealed, x []float32, weight uint64) ([]uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.phase != clientShared {
		return nil, fmt.Errorf("%w: MaskedInput called before ShareKeys, or twice", ErrPhase)
	}
	if len(x) == 0 {
		return nil, fmt.Errorf("%w: client %d's input vector is empty", ErrMessage, c.self)
	}
	gotB := make([][]byte, len(c.nbrs))
	gotM := make([][]byte, len(c.nbrs))
	fail := func(err error) ([]uint64, error) {
		for a := range gotB {
			clear(gotB[a])
			clear(gotM[a])
		}
		return nil, err
	}
	for _, s := range shares {
		if s.To != c.self {
			return fail(fmt.Errorf("%w: a box from client %d is addressed to client %d, not to this client %d", ErrMessage, s.From, s.To, c.self))
		}
		a := placeOf(c.nbrs, s.From)
		if a < 0 {
			return fail(fmt.Errorf("%w: client %d is not a neighbour of client %d", ErrMessage, s.From, c.self))
		}
		if gotB[a] != nil {
			return fail(fmt.Errorf("%w: two boxes from client %d to client %d", ErrDuplicate, s.From, c.self))
		}
		plain, err := open(c.openKeys[a], c.round, s)
		if err != nil {
			return fail(err)
		}
		if plain[0] != c.myX[a] || plain[1+SecretSize] != c.myX[a] {
			clear(plain)
			return fail(fmt.Errorf("%w: the box from client %d holds shares at x = %d and %d, want %d", ErrMessage, s.From, plain[0], plain[1+SecretSize], c.myX[a]))
		}
		gotB[a] = bytes.Clone(plain[1 : 1+SecretSize])
		gotM[a] = bytes.Clone(plain[2+SecretSize:])
		clear(plain)
	}
	y := make([]uint64, len(x)+1)
	if err := quantiseInto(c.p, y, x, weight); err != nil {
		return fail(fmt.Errorf("client %d: %w", c.self, err))
	}
	addPRG(y, c.b, false)
	for a, j := range c.nbrs {
		if gotB[a] != nil {
			addPRG(y, c.seeds[a], c.self > j)
		}
	}
	clear(c.b)
	for a := range c.nbrs {
		clear(c.seeds[a])
		clear(c.openKeys[a])
	}
	c.b, c.seeds, c.openKeys = nil, nil, nil
	c.gotB, c.gotM = gotB, gotM
	c.phase = clientMasked
	return y, nil
}

// Unmask answers the server's unmask request: survivors and dropped are disjoint sets of
// indices. It reveals, for each neighbour that shared keys with this client, the share the sets
// call for; it refuses (ErrUnmask) a request that names a client in both sets, names this client
// as dropped, has fewer than Threshold survivors, or comes a second time.
//
// It also refuses (ErrUnmask) a request that does not name this client as a survivor, and
// (ErrMessage) an index outside the roster or named twice in one set. Whatever the outcome, the
// first call after MaskedInput is the last: the received shares are wiped.
func (c *Client) Unmask(survivors, dropped []int) ([]Reveal, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.phase {
	case clientAdvertised, clientShared:
		return nil, fmt.Errorf("%w: Unmask called before MaskedInput", ErrPhase)
	case clientDone:
		return nil, fmt.Errorf("%w: client %d already answered an unmask request", ErrUnmask, c.self)
	}
	defer func() {
		for a := range c.gotB {
			clear(c.gotB[a])
			clear(c.gotM[a])
		}
		c.gotB, c.gotM = nil, nil
		c.phase = clientDone
	}()
	role := make([]byte, c.n) // 0 unnamed, 1 survivor, 2 dropped
	for set, list := range [][]int{survivors, dropped} {
		for _, i := range list {
			if i < 0 || i >= c.n {
				return nil, fmt.Errorf("%w: the unmask request names client %d outside a roster of %d", ErrMessage, i, c.n)
			}
			switch role[i] {
			case 0:
				role[i] = byte(set + 1)
			case byte(set + 1):
				return nil, fmt.Errorf("%w: the unmask request names client %d twice", ErrMessage, i)
			default:
				return nil, fmt.Errorf("%w: the unmask request names client %d both as a survivor and as dropped: answering would reveal its input", ErrUnmask, i)
			}
		}
	}
	switch {
	case role[c.self] == 2:
		return nil, fmt.Errorf("%w: the unmask request names this client %d as dropped, but it sent its input", ErrUnmask, c.self)
	case role[c.self] != 1:
		return nil, fmt.Errorf("%w: the unmask request does not name this client %d as a survivor, but it sent its input", ErrUnmask, c.self)
	case len(survivors) < c.p.Threshold:
		return nil, fmt.Errorf("%w: the unmask request names %d survivors, fewer than the threshold %d", ErrUnmask, len(survivors), c.p.Threshold)
	}
	var out []Reveal
	for a, j := range c.nbrs {
		if c.gotB[a] == nil {
			continue
		}
		switch role[j] {
		case 1:
			out = append(out, Reveal{Of: j, Share: bytes.Clone(c.gotB[a])})
		case 2:
			out = append(out, Reveal{Of: j, Share: bytes.Clone(c.gotM[a])})
		}
	}
	return out, nil
}
