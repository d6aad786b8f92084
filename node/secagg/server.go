package secagg

import (
	"bytes"
	"crypto/ecdh"
	"fmt"
	"slices"
	"sync"

	"github.com/califusion/califusion/node/internal/shamir"
)

// Server is the server's side of a round: it routes shares, sums masked inputs as they arrive
// (memory: one vector) and removes the masks.
//
// Its phases: AddShares until the first SharesFor or AddInput (routing freezes who shared
// keys); AddInput until Unmasking; AddReveals until a Sum succeeds. It keeps the roster, the
// sealed boxes (n·k·SealedSize bytes), the running sum (dim+1 coordinates) and the reveals, never
// a client's individual vector. It is safe for concurrent use.
type Server struct {
	mu     sync.Mutex
	p      Params
	round  []byte
	roster []Keys
	n, dim int
	graph  [][]int // graph[i] = N(i), sorted

	shared  []bool
	boxes   [][]Sealed // boxes[to]
	routing bool       // sharing frozen

	input []bool
	sum   []uint64

	unmasking bool
	role      []byte // 1 survivor, 2 dropped (set by Unmasking)
	survivors []int
	dropped   []int
	revealed  []bool
	shares    [][]shamir.Share // shares[of]: revealed shares of of's self-mask seed or mask key
	done      bool
}

// NewServer starts the server's side for a roster (the advertised keys in index order) of a
// round, for input vectors of length dim (masked inputs have dim+1 coordinates).
//
// It refuses (ErrParams) parameters Check refuses for len(roster), an empty round ID or dim < 1,
// and (ErrRoster) a key that is not 32 bytes or is advertised twice.
func NewServer(p Params, round []byte, roster []Keys, dim int) (*Server, error) {
	n := len(roster)
	if err := p.Check(n); err != nil {
		return nil, err
	}
	if len(round) == 0 {
		return nil, fmt.Errorf("%w: empty round ID", ErrParams)
	}
	if dim < 1 {
		return nil, fmt.Errorf("%w: vector length %d, want at least 1", ErrParams, dim)
	}
	if err := checkRosterKeys(roster); err != nil {
		return nil, err
	}
	s := &Server{
		p: p, round: bytes.Clone(round), n: n, dim: dim,
		roster: make([]Keys, n), shared: make([]bool, n), boxes: make([][]Sealed, n),
		input: make([]bool, n), sum: make([]uint64, dim+1), role: make([]byte, n),
		revealed: make([]bool, n), shares: make([][]shamir.Share, n),
	}
	for i, k := range roster {
		s.roster[i] = Keys{Seal: bytes.Clone(k.Seal), Mask: bytes.Clone(k.Mask)}
	}
	s.graph = Graph(n, p.Neighbours, RosterSeed(s.round, s.roster))
	return s, nil
}

// Neighbours returns N(i) in this round's graph (nil for i outside the roster).
func (s *Server) Neighbours(i int) []int {
	if i < 0 || i >= s.n {
		return nil
	}
	return slices.Clone(s.graph[i])
}

// AddShares records client from's sealed shares (one per neighbour, From == from); a second call
// for the same client or a call after the first masked input is refused.
//
// Routing freezes sharing: a call after the first SharesFor or AddInput is refused (ErrPhase).
// Refusals: ErrMessage for from outside the roster, a count other than one per neighbour, a
// From other than from, a To that is not from's neighbour, or a box not SealedSize bytes;
// ErrDuplicate for a second call or two boxes to one neighbour.
func (s *Server) AddShares(from int, sealed []Sealed) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.routing {
		return fmt.Errorf("%w: client %d's shares came after routing began", ErrPhase, from)
	}
	if from < 0 || from >= s.n {
		return fmt.Errorf("%w: shares from client %d outside a roster of %d", ErrMessage, from, s.n)
	}
	if s.shared[from] {
		return fmt.Errorf("%w: client %d already shared keys", ErrDuplicate, from)
	}
	nb := s.graph[from]
	if len(sealed) != len(nb) {
		return fmt.Errorf("%w: client %d sent %d boxes, want one for each of its %d neighbours", ErrMessage, from, len(sealed), len(nb))
	}
	seen := make([]bool, len(nb))
	for _, b := range sealed {
		a := placeOf(nb, b.To)
		switch {
		case b.From != from:
			return fmt.Errorf("%w: client %d sent a box marked from client %d", ErrMessage, from, b.From)
		case a < 0:
			return fmt.Errorf("%w: client %d sent a box to client %d, not its neighbour", ErrMessage, from, b.To)
		case seen[a]:
			return fmt.Errorf("%w: client %d sent two boxes to client %d", ErrDuplicate, from, b.To)
		case len(b.Box) != SealedSize:
			return fmt.Errorf("%w: client %d's box to client %d is %d bytes, want %d", ErrMessage, from, b.To, len(b.Box), SealedSize)
		}
		seen[a] = true
	}
	for _, b := range sealed {
		s.boxes[b.To] = append(s.boxes[b.To], Sealed{From: from, To: b.To, Box: bytes.Clone(b.Box)})
	}
	s.shared[from] = true
	return nil
}

// SharesFor returns the sealed shares addressed to client to (call once every client that will
// has shared keys).
//
// The first call freezes sharing (see AddShares). The boxes are sorted by sender; nil for to
// outside the roster.
func (s *Server) SharesFor(to int) []Sealed {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routing = true
	if to < 0 || to >= s.n {
		return nil
	}
	out := make([]Sealed, len(s.boxes[to]))
	for a, b := range s.boxes[to] {
		out[a] = Sealed{From: b.From, To: b.To, Box: bytes.Clone(b.Box)}
	}
	slices.SortFunc(out, func(x, y Sealed) int { return x.From - y.From })
	return out
}

// Shared reports whether client i's shares were accepted.
func (s *Server) Shared(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return i >= 0 && i < s.n && s.shared[i]
}

// AddInput folds client from's masked input into the running sum: refused if from did not share
// keys, sent one already, the length is not dim+1, or unmasking has begun.
//
// Refusals: ErrPhase after Unmasking; ErrMessage for from outside the roster, a client that did
// not share keys, or a length other than dim+1; ErrDuplicate for a second input. The first input
// freezes sharing (see AddShares).
func (s *Server) AddInput(from int, y []uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unmasking {
		return fmt.Errorf("%w: client %d's masked input came after unmasking began", ErrPhase, from)
	}
	if from < 0 || from >= s.n {
		return fmt.Errorf("%w: a masked input from client %d outside a roster of %d", ErrMessage, from, s.n)
	}
	if !s.shared[from] {
		return fmt.Errorf("%w: client %d sent a masked input but did not share keys", ErrMessage, from)
	}
	if s.input[from] {
		return fmt.Errorf("%w: client %d already sent its masked input", ErrDuplicate, from)
	}
	if len(y) != s.dim+1 {
		return fmt.Errorf("%w: client %d's masked input has %d coordinates, want %d", ErrMessage, from, len(y), s.dim+1)
	}
	s.routing = true
	sum := s.sum[:len(y)]
	for c, v := range y {
		sum[c] += v
	}
	s.input[from] = true
	return nil
}

// Unmasking closes the inputs and returns the request every survivor answers: the survivors
// (sent an input) and the dropped (shared keys, sent no input). ErrTooFew if fewer than
// Threshold clients sent inputs.
//
// A second call returns the same request. Both lists are sorted.
func (s *Server) Unmasking() (survivors, dropped []int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.unmasking {
		s.unmasking, s.routing = true, true
		for i := range s.n {
			switch {
			case s.input[i]:
				s.role[i] = 1
				s.survivors = append(s.survivors, i)
			case s.shared[i]:
				s.role[i] = 2
				s.dropped = append(s.dropped, i)
			}
		}
	}
	if len(s.survivors) < s.p.Threshold {
		return nil, nil, fmt.Errorf("%w: %d clients sent masked inputs, the threshold is %d", ErrTooFew, len(s.survivors), s.p.Threshold)
	}
	return slices.Clone(s.survivors), slices.Clone(s.dropped), nil
}

// AddReveals records a survivor's reveals (refused from a non-survivor, twice, or for a client
// that is not its neighbour).
//
// Refusals: ErrPhase before Unmasking or after a successful Sum; ErrMessage from a non-survivor,
// for a client that is not a neighbour or did not share keys, or with a share not SecretSize
// bytes; ErrDuplicate for a second call or two reveals of one client. A refused call records
// nothing.
func (s *Server) AddReveals(from int, reveals []Reveal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.unmasking {
		return fmt.Errorf("%w: client %d's reveals came before unmasking began", ErrPhase, from)
	}
	if s.done {
		return fmt.Errorf("%w: client %d's reveals came after the sum was taken", ErrPhase, from)
	}
	if from < 0 || from >= s.n || s.role[from] != 1 {
		return fmt.Errorf("%w: reveals from client %d, not a survivor", ErrMessage, from)
	}
	if s.revealed[from] {
		return fmt.Errorf("%w: client %d already sent its reveals", ErrDuplicate, from)
	}
	seen := make(map[int]bool, len(reveals))
	for _, r := range reveals {
		switch {
		case placeOf(s.graph[from], r.Of) < 0:
			return fmt.Errorf("%w: client %d revealed a share of client %d, not its neighbour", ErrMessage, from, r.Of)
		case !s.shared[r.Of]:
			return fmt.Errorf("%w: client %d revealed a share of client %d, which did not share keys", ErrMessage, from, r.Of)
		case seen[r.Of]:
			return fmt.Errorf("%w: client %d revealed two shares of client %d", ErrDuplicate, from, r.Of)
		case len(r.Share) != SecretSize:
			return fmt.Errorf("%w: client %d's share of client %d is %d bytes, want %d", ErrMessage, from, r.Of, len(r.Share), SecretSize)
		}
		seen[r.Of] = true
	}
	for _, r := range reveals {
		x := byte(placeOf(s.graph[r.Of], from) + 1)
		s.shares[r.Of] = append(s.shares[r.Of], shamir.Share{X: x, Y: bytes.Clone(r.Share)})
	}
	s.revealed[from] = true
	return nil
}

// Sum removes the masks and returns the sum of the survivors' weighted, quantised vectors (dim+1
// coordinates, the last the total weight). ErrTooFew names a secret with fewer than Threshold
// reveals.
//
// It reconstructs every survivor's self-mask seed and the mask key of every dropped client with
// a surviving neighbour before touching the sum, so after ErrTooFew the caller may wait for more
// reveals and call again. Revealed shares that disagree (more than Threshold of them, not on one
// polynomial) or a mask key that is not the one the client advertised give ErrMessage naming the
// client: a wrong sum is never returned for wrong shares that can be detected. Before Unmasking:
// ErrPhase. After success it returns the same sum again.
func (s *Server) Sum() ([]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.unmasking {
		return nil, fmt.Errorf("%w: Sum called before Unmasking", ErrPhase)
	}
	if s.done {
		return slices.Clone(s.sum), nil
	}
	if len(s.survivors) < s.p.Threshold {
		return nil, fmt.Errorf("%w: %d clients sent masked inputs, the threshold is %d", ErrTooFew, len(s.survivors), s.p.Threshold)
	}
	type term struct {
		seed []byte
		sub  bool
	}
	var terms []term
	defer func() {
		for _, t := range terms {
			clear(t.seed)
		}
	}()
	for _, i := range s.survivors {
		b, err := s.reconstruct(i, "self-mask seed")
		if err != nil {
			return nil, err
		}
		terms = append(terms, term{b, true})
	}
	for _, d := range s.dropped {
		var live []int
		for _, j := range s.graph[d] {
			if s.role[j] == 1 {
				live = append(live, j)
			}
		}
		if len(live) == 0 {
			continue
		}
		sk, err := s.reconstruct(d, "mask key")
		if err != nil {
			return nil, err
		}
		priv, err := ecdh.X25519().NewPrivateKey(sk)
		clear(sk)
		if err != nil || !bytes.Equal(priv.PublicKey().Bytes(), s.roster[d].Mask) {
			return nil, fmt.Errorf("%w: the revealed shares of client %d's mask key do not give the key it advertised (a survivor revealed a wrong share)", ErrMessage, d)
		}
		for _, j := range live {
			seed, err := maskSeed(priv, s.roster[j].Mask, s.round, j, d)
			if err != nil {
				return nil, fmt.Errorf("%w: clients %d and %d's mask keys give no X25519 agreement: %v", ErrMessage, d, j, err)
			}
			// j added +PRG(s_jd) if j < d, −PRG(s_jd) if j > d: take it back out.
			terms = append(terms, term{seed, j < d})
		}
	}
	for _, t := range terms {
		addPRG(s.sum, t.seed, t.sub)
	}
	for i := range s.shares {
		wipeShares(s.shares[i])
		s.shares[i] = nil
	}
	s.done = true
	return slices.Clone(s.sum), nil
}

// reconstruct combines the revealed shares of client i's secret (what names it in errors):
// ErrTooFew below the threshold, ErrMessage if shares beyond the threshold disagree.
func (s *Server) reconstruct(i int, what string) ([]byte, error) {
	sh := s.shares[i]
	t := s.p.Threshold
	if len(sh) < t {
		return nil, fmt.Errorf("%w: %d shares of client %d's %s were revealed, %d are needed", ErrTooFew, len(sh), i, what, t)
	}
	secret, err := shamir.Combine(sh[:t])
	if err != nil {
		return nil, fmt.Errorf("%w: client %d's %s: %v", ErrMessage, i, what, err)
	}
	probe := make([]shamir.Share, t)
	copy(probe, sh[:t-1])
	for _, extra := range sh[t:] {
		probe[t-1] = extra
		other, err := shamir.Combine(probe)
		same := err == nil && bytes.Equal(other, secret)
		clear(other)
		if !same {
			clear(secret)
			return nil, fmt.Errorf("%w: the revealed shares of client %d's %s disagree (a survivor revealed a wrong share)", ErrMessage, i, what)
		}
	}
	return secret, nil
}
