// Package anchoring keeps model manifests anchored in the Calimero catalog context and round
// commitments in each lineage's training context (training.go), and checks anchors, caching the
// last known state of each model for listings. The policy
// (calimero.anchoring) is "require" (a model must be validly anchored before it is paid for or
// fetched), "prefer" (anchor what this node publishes, check nothing) or "off".
package anchoring

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Anchors is what the node uses of Calimero: signed manifests anchored under their SHA-256 in a
// context, read back and verified. *calimero.Anchors implements it; tests use the hand-written
// fake in anchoringtest so anchoring policy runs without an emulated merod.
type Anchors interface {
	// Put anchors a signed record and returns its ID (the SHA-256 of its bytes).
	Put(ctx context.Context, record []byte) ([32]byte, error)
	// Get reads and verifies the anchor of id: the state is verified, missing or invalid, with
	// err the reason for invalid; a failure to read at all has state "" and err set.
	Get(ctx context.Context, id [32]byte, verify func(record []byte) error) ([]byte, string, error)
	// List returns every anchored record verify accepts, and how many others were skipped.
	List(ctx context.Context, verify func(record []byte) error) (records [][]byte, invalid int, err error)
}

var _ Anchors = (*calimero.Anchors)(nil)

// Errors of WaitVerified, for errors.Is.
var (
	ErrInvalid = errors.New("anchor is invalid")
	ErrMissing = errors.New("anchor is missing")
)

// Service is the anchoring service. It runs no goroutines: every call is the caller's.
type Service struct {
	policy  string  // require | prefer | off
	anchors Anchors // the catalog context; nil when anchoring is off
	signer  crypto.PrivKey
	self    peer.ID
	log     *slog.Logger
	metrics *metrics.Set

	// Training contexts (training.go): client is the catalog context's client (nil in tests
	// built with NewWith, and when anchoring is off); its node holds the training contexts too.
	client      *calimero.Client
	cfgURL      string
	trainingCfg bool
	tr          trainingState
	invites     *limiter

	mu    sync.Mutex
	state map[content.ModelID]string
}

// New builds the anchoring service from config; with no URL or policy "off" it is off. signer
// signs the commitments Commit anchors (the node's key).
func New(cfg config.Calimero, signer crypto.PrivKey) (*Service, error) {
	if cfg.URL == "" || cfg.Anchoring == "off" {
		return NewWith("off", nil, signer), nil
	}
	cc := calimero.Config{URL: cfg.URL, ContextID: cfg.ContextID, ExecutorPublicKey: cfg.ExecutorKey}
	if cfg.CredentialsFile != "" {
		raw, err := os.ReadFile(cfg.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("calimero.credentials_file: %w", err)
		}
		user, pass, ok := strings.Cut(strings.TrimSpace(string(raw)), ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("calimero.credentials_file %s must hold one line \"username:password\"", cfg.CredentialsFile)
		}
		cc.Username, cc.Password = user, pass
	}
	client := calimero.New(cc)
	s := NewWith(cfg.Anchoring, calimero.NewAnchors(client), signer)
	s.client, s.cfgURL, s.trainingCfg = client, cfg.URL, cfg.TrainingOn()
	if d := cfg.InviteInterval.Duration; d > 0 {
		s.invites = newLimiter(d, 3)
	}
	return s, nil
}

// NewWith returns a service with policy over a (tests: a fake). A nil a turns anchoring off.
func NewWith(policy string, a Anchors, signer crypto.PrivKey) *Service {
	if a == nil {
		policy = "off"
	}
	var self peer.ID
	if signer != nil {
		self, _ = peer.IDFromPrivateKey(signer)
	}
	return &Service{policy: policy, anchors: a, signer: signer, self: self, log: slog.New(slog.DiscardHandler), state: map[content.ModelID]string{},
		invites: newLimiter(10*time.Second, 3),
		tr:      trainingState{byLin: map[[32]byte]*training{}, failed: map[[32]byte]time.Time{}, fellBack: map[[32]byte]bool{}}}
}

// SetLog sets the logger Commit reports its failures to (default: discard). Call it before use.
func (s *Service) SetLog(log *slog.Logger) {
	if log != nil {
		s.log = log
	}
}

// Policy is the configured policy: "require", "prefer" or "off".
func (s *Service) Policy() string { return s.policy }

// Required reports whether the policy is "require": models must be validly anchored.
func (s *Service) Required() bool { return s.policy == "require" }

// On reports whether anchoring is on (a Calimero context is configured).
func (s *Service) On() bool { return s.anchors != nil }

// Remember records state as the last known state of id.
func (s *Service) Remember(id content.ModelID, state string) {
	s.mu.Lock()
	s.state[id] = state
	s.mu.Unlock()
}

// Known returns the last state seen for id, without asking Calimero.
func (s *Service) Known(id content.ModelID) string {
	if !s.On() {
		return calimero.StateOff
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.state[id]; ok {
		return st
	}
	return calimero.StateMissing
}

// Put anchors a signed manifest.
func (s *Service) Put(ctx context.Context, signed []byte) error {
	if !s.On() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	id, err := s.anchors.Put(ctx, signed)
	if err == nil {
		s.Remember(id, calimero.StateVerified)
	}
	return err
}

// Check reads the anchor of id afresh and verifies it is exactly the manifest we hold.
func (s *Service) Check(ctx context.Context, id content.ModelID, signed []byte) (string, error) {
	if !s.On() {
		return calimero.StateOff, nil
	}
	_, state, err := s.anchors.Get(ctx, id, func(record []byte) error {
		if string(record) != string(signed) {
			return errors.New("anchored manifest differs from the one announced")
		}
		_, _, err := content.Open(record)
		return err
	})
	if state != "" {
		s.Remember(id, state)
	}
	return state, err
}

// WaitVerified polls until id's anchor verifies (replicas may lag), failing at once on an invalid
// anchor (ErrInvalid) and after wait on a missing one (ErrMissing).
func (s *Service) WaitVerified(ctx context.Context, id content.ModelID, signed []byte, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	backoff := 100 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		state, err := s.Check(cctx, id, signed)
		cancel()
		switch {
		case state == calimero.StateVerified:
			return nil
		case state == calimero.StateInvalid:
			return fmt.Errorf("%w: model %s: %v", ErrInvalid, hex.EncodeToString(id[:]), err)
		case time.Now().After(deadline):
			if err != nil {
				return fmt.Errorf("%w: %v", ErrMissing, err)
			}
			return fmt.Errorf("%w: model %s has no anchor in Calimero after %v", ErrMissing, hex.EncodeToString(id[:]), wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// List returns every anchored record verify accepts, and how many others were skipped; nothing
// when anchoring is off.
func (s *Service) List(ctx context.Context, verify func(record []byte) error) ([][]byte, int, error) {
	if !s.On() {
		return nil, 0, nil
	}
	return s.anchors.List(ctx, verify)
}

// Commit signs and anchors c, returning its kv-store key ("" when anchoring is off or Calimero
// cannot be reached: the round goes on and the report lists only real anchors). Commitments of a
// round go to the training context of the round model's lineage when this node has one or can
// create it (a coordinator of the lineage), else to the catalog context (logged once per
// lineage); the key is the same in either. A round commitment also goes to the catalog context.
func (s *Service) Commit(ctx context.Context, c *calimero.Commitment) string {
	if !s.On() {
		return ""
	}
	c.CreatedAt = time.Now().UnixMilli()
	signed, err := calimero.SignCommitment(c, s.signer)
	if err != nil {
		s.log.Warn("sign commitment", "err", err)
		return ""
	}
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	target := s.commitTarget(actx, c)
	id, err := target.Put(actx, signed)
	if err != nil {
		s.log.Warn("anchor commitment", "kind", c.Kind, "round", c.Round, "err", err)
		return ""
	}
	// A round commitment is what another coordinator re-opens the round from when its own
	// coordinator dies (node/rounds failover), and the training context's creator, who invites
	// members, may be the one that died: it goes to the catalog context as well, which every
	// coordinator reads without an invitation.
	if c.Kind == calimero.KindRound && target != s.anchors {
		if _, err := s.anchors.Put(actx, signed); err != nil {
			s.log.Warn("anchor the round commitment in the catalog context", "round", c.Round, "err", err)
		}
	}
	return calimero.AnchorKey(id)
}
