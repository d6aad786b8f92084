package content

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/califusion/califusion/node/internal/shamir"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrShare says a key share does not match its version's share commitment.
var ErrShare = errors.New("key share does not match the manifest's share commitment")

// KeyShare is one holder's Shamir share of a content key: X = holder index + 1.
type KeyShare = shamir.Share

// shareContext and coeffContext separate the share commitments and the derivation of a split's
// polynomial coefficients from every other hash of the protocol.
const (
	shareContext = "califusion/keyshare/v1"
	coeffContext = "califusion/keyshare-coefficients/v1"
)

// IsThreshold reports whether m's key is escrowed t-of-n (Threshold ≥ 2): its holders keep
// shares, never the whole key.
func (m *Manifest) IsThreshold() bool { return m.Threshold >= 2 }

// ShareHolderIDs returns the peers holding m's key shares, in commitment order: a root's
// coordinators, a later version's ShareHolders (validated on Open and Sign).
func (m *Manifest) ShareHolderIDs() []peer.ID {
	list := m.ShareHolders
	if m.IsRoot() {
		list = m.Coordinators
	}
	out := make([]peer.ID, 0, len(list))
	for _, b := range list {
		if id, err := peer.IDFromBytes(b); err == nil {
			out = append(out, id)
		}
	}
	return out
}

// ShareIndex returns p's index among m's share holders, or false.
func (m *Manifest) ShareIndex(p peer.ID) (uint, bool) {
	for i, h := range m.ShareHolderIDs() {
		if h == p {
			return uint(i), true
		}
	}
	return 0, false
}

// validateShares checks the threshold fields: with Threshold ≥ 2 one 32-byte commitment per
// holder and t ≤ holders; without, no commitments and no holders.
func (m *Manifest) validateShares() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrManifest, fmt.Sprintf(format, args...))
	}
	if !m.IsThreshold() {
		if len(m.ShareCommitments) != 0 || len(m.ShareHolders) != 0 {
			return bad("share commitments and share holders need a threshold of at least 2")
		}
		if m.Threshold == 1 && len(m.Parent) == 0 && len(m.Coordinators) == 0 {
			return bad("a threshold needs coordinators")
		}
		return nil
	}
	holders := len(m.ShareHolders)
	if len(m.Parent) == 0 {
		if len(m.ShareHolders) != 0 {
			return bad("a lineage root's share holders are its coordinators: it names no share holders")
		}
		holders = len(m.Coordinators)
	} else if err := checkPeerList(m.ShareHolders, "share holder"); err != nil {
		return err
	}
	switch {
	case holders > MaxCoordinators:
		return bad("%d share holders, at most %d", holders, MaxCoordinators)
	case int(m.Threshold) > holders:
		return bad("threshold %d exceeds the %d coordinators holding shares: name at least %d coordinators or lower the threshold", m.Threshold, holders, m.Threshold)
	case len(m.ShareCommitments) != holders:
		return bad("%d share commitments for %d share holders: one per holder", len(m.ShareCommitments), holders)
	}
	for i, c := range m.ShareCommitments {
		if len(c) != 32 {
			return bad("share commitment %d must be 32 bytes", i)
		}
	}
	return nil
}

// ShareCommitment returns SHA-256("califusion/keyshare/v1" ‖ salt ‖ x ‖ y): the commitment to
// share y at x of the version whose manifest has salt.
func ShareCommitment(salt []byte, x byte, y []byte) []byte {
	h := sha256.New()
	h.Write([]byte(shareContext))
	h.Write(salt)
	h.Write([]byte{x})
	h.Write(y)
	return h.Sum(nil)
}

// SplitKey splits k into n shares (X = 1..n), any t of which rebuild it (2 ≤ t ≤ n ≤
// MaxCoordinators), and returns them with their commitments under salt (the manifest's). The
// polynomials' coefficients are derived from k and salt (HKDF-SHA-256), so the publisher, who
// keeps k, can compute the same shares again to re-deposit them.
func SplitKey(k Key, salt []byte, n, t int) ([]KeyShare, [][]byte, error) {
	if t < 2 || n < t || n > MaxCoordinators {
		return nil, nil, fmt.Errorf("%w: a threshold split needs 2 ≤ t ≤ n ≤ %d, got t=%d n=%d", ErrManifest, MaxCoordinators, t, n)
	}
	if len(salt) != SaltSize {
		return nil, nil, fmt.Errorf("%w: salt is %d bytes, want %d", ErrManifest, len(salt), SaltSize)
	}
	coeffs, err := hkdf.Key(sha256.New, k[:], salt, coeffContext, KeySize*(t-1))
	if err != nil {
		return nil, nil, err
	}
	defer clear(coeffs)
	shares, err := shamir.Split(k[:], n, t, bytes.NewReader(coeffs))
	if err != nil {
		return nil, nil, err
	}
	commits := make([][]byte, n)
	for i, s := range shares {
		commits[i] = ShareCommitment(salt, s.X, s.Y)
	}
	return shares, commits, nil
}

// CheckShare reports whether y is the share of holder index (0-based) of the version m
// describes: its commitment matches, in constant time (ErrShare otherwise).
func CheckShare(m *Manifest, index uint, y []byte) error {
	if !m.IsThreshold() {
		return fmt.Errorf("%w: the model's key is not split", ErrShare)
	}
	if index >= uint(len(m.ShareCommitments)) {
		return fmt.Errorf("%w: index %d, the model has %d shares", ErrShare, index, len(m.ShareCommitments))
	}
	if len(y) != KeySize {
		return fmt.Errorf("%w: a share is %d bytes, got %d", ErrShare, KeySize, len(y))
	}
	if subtle.ConstantTimeCompare(ShareCommitment(m.Salt, byte(index+1), y), m.ShareCommitments[index]) != 1 {
		return ErrShare
	}
	return nil
}

// CombineKey rebuilds the key of the version m describes from at least m.Threshold shares the
// caller checked (CheckShare), and checks it against the manifest's key commitment
// (ErrKeyCommitment when it does not match).
func CombineKey(m *Manifest, shares []KeyShare) (Key, error) {
	if !m.IsThreshold() {
		return Key{}, fmt.Errorf("%w: the model's key is not split", ErrShare)
	}
	if uint(len(shares)) < m.Threshold {
		return Key{}, fmt.Errorf("%d shares, %d are needed", len(shares), m.Threshold)
	}
	raw, err := shamir.Combine(shares[:m.Threshold])
	if err != nil {
		return Key{}, err
	}
	defer clear(raw)
	if len(raw) != KeySize {
		return Key{}, fmt.Errorf("%w: shares of %d bytes", ErrShare, len(raw))
	}
	k := Key(raw)
	if err := k.CheckCommitment(m.KeyCommitment); err != nil {
		k.Wipe()
		return Key{}, err
	}
	return k, nil
}
