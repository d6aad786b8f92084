package ledger

import (
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/aviate-labs/agent-go/identity"
	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/internal/fsutil"
	"github.com/califusion/califusion/node/internal/limit"
	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// maxLimitedPeers bounds the verification budgets kept; beyond it, budgets that are full again
// (peers idle for a while) are forgotten.
const maxLimitedPeers = 10_000

// Identity returns the paying identity: the imported dfx PEM (secp256k1, Ed25519 or
// prime256v1), or the node's own Ed25519 key. A PEM the node cannot use is refused with one
// sentence naming the file and the reason.
func Identity(cfg config.ICP, nodeKey crypto.PrivKey) (identity.Identity, error) {
	if path := cfg.IdentityPEM; path != "" {
		raw, err := fsutil.ReadSecret(path)
		if err != nil {
			return nil, fmt.Errorf("icp.identity_pem: %w", err)
		}
		id, err := icp.ParseIdentityPEM(raw)
		if err != nil {
			return nil, fmt.Errorf("icp.identity_pem %s cannot be used: %v", path, err)
		}
		return id, nil
	}
	if nodeKey.Type() != crypto.Ed25519 {
		return nil, errors.New("node identity is not an Ed25519 key")
	}
	raw, err := nodeKey.Raw()
	if err != nil {
		return nil, err
	}
	if len(raw) != 64 {
		return nil, errors.New("node identity is not an Ed25519 key")
	}
	return identity.NewEd25519Identity(raw[32:], raw)
}

// Service connects to the ICP ledger on first use (agent-go fetches the root key then), so a node
// whose replica is down still starts, and retries the connection on later calls. It also holds
// the coordinator's per-peer budget of payment verifications. It runs no goroutines.
type Service struct {
	cfg config.ICP
	id  identity.Identity

	mu sync.Mutex
	c  Ledger // connected on first use; NewWith sets it

	metrics *metrics.Set // observes the client's calls (nil: none); SetMetrics sets it

	verify *limit.PerPeer
}

// New returns the ledger service paying as id, connecting to the replica cfg names on first use.
func New(cfg config.ICP, id identity.Identity) *Service {
	per := cfg.VerificationsPerPeer
	if per <= 0 {
		per = 10
	}
	// A verification makes the coordinator query the ledger, so each peer gets
	// icp.verifications_per_peer per minute, with the same burst.
	return &Service{cfg: cfg, id: id, verify: limit.New(per, time.Minute/time.Duration(per), maxLimitedPeers)}
}

// NewWith returns a ledger service that uses c instead of connecting (tests: a fake ledger).
func NewWith(cfg config.ICP, id identity.Identity, c Ledger) *Service {
	s := New(cfg, id)
	s.c = c
	return s
}

// Client returns the connected ledger client, connecting on first use. A failure is an
// *apierr.Error Unavailable that says what to check, with the cause as its data.
func (s *Service) Client() (Ledger, error) {
	c, err := s.client()
	if err != nil {
		return nil, &apierr.Error{Code: apierr.Unavailable, Message: "the ICP replica could not be reached: check icp.replica_url and icp.fetch_root_key", Data: err.Error()}
	}
	return c, nil
}

func (s *Service) client() (Ledger, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		return s.c, nil
	}
	if s.id == nil {
		return nil, errors.New("no ICP identity")
	}
	c, err := icp.New(icp.Config{
		ReplicaURL: s.cfg.ReplicaURL, LedgerID: s.cfg.LedgerCanisterID,
		FetchRootKey: s.cfg.FetchRootKey, Identity: s.id, LedgerKind: s.cfg.LedgerKind,
		MaxPaymentAge: s.cfg.MaxPaymentAge.Duration, MaxPaymentDepth: s.cfg.MaxPaymentDepth,
		MaxVerifyBlocks: s.cfg.MaxVerifyBlocks,
	})
	if err != nil {
		return nil, err
	}
	s.c = Instrument(c, s.metrics)
	return s.c, nil
}

// Identity is the paying identity the service was made with.
func (s *Service) Identity() identity.Identity { return s.id }

// Principal is the paying identity's principal: the account that pays and is paid (the dfx
// PEM's when one is set). It is the anonymous principal when the service has no identity.
func (s *Service) Principal() principal.Principal {
	if s.id == nil {
		return principal.AnonymousID
	}
	return s.id.Sender()
}

// CanisterID is the configured ledger canister ID (icp.ledger_canister_id).
func (s *Service) CanisterID() string { return s.cfg.LedgerCanisterID }

// AllowVerify takes one payment verification from p's budget, and reports whether there was one.
// A verification makes the coordinator query the ledger, so each peer gets
// icp.verifications_per_peer per minute, with the same burst.
func (s *Service) AllowVerify(p peer.ID) bool { return s.verify.Allow(p) }

// Kind returns the ledger kind for display without asking the ledger: the configured one, or the
// detected one once the node has talked to the ledger ("auto" before).
func (s *Service) Kind() string {
	s.mu.Lock()
	c := s.c
	s.mu.Unlock()
	if c != nil {
		return string(c.KnownKind())
	}
	if k := s.cfg.LedgerKind; k != "" {
		return k
	}
	return string(icp.KindAuto)
}

// Token returns the ledger's token details if the node has read them already.
func (s *Service) Token() (icp.Token, bool) {
	s.mu.Lock()
	c := s.c
	s.mu.Unlock()
	if c == nil {
		return icp.Token{}, false
	}
	return c.CachedToken()
}

// Err maps a ledger call's error to an *apierr.Error: a shortfall or a refusal for lack of funds
// is InsufficientFunds, another refusal InvalidParams (Unavailable when the ledger is
// temporarily unavailable), and any other failure Unavailable.
func Err(err error) error {
	var sf *icp.Shortfall
	if errors.As(err, &sf) {
		need := new(big.Int).Add(sf.Amount, sf.Fee)
		return &apierr.Error{Code: apierr.InsufficientFunds, Message: "the ledger refused the transfer: " + sf.Error(),
			Data: map[string]string{"balance": sf.Balance.String(), "amount": sf.Amount.String(), "fee": sf.Fee.String(), "needed": need.String()}}
	}
	var f *icp.TransferFailure
	if errors.As(err, &f) && errors.Is(err, icp.ErrInsufficientFunds) {
		return &apierr.Error{Code: apierr.InsufficientFunds, Message: "the ledger refused the transfer: " + f.Error()}
	}
	if errors.As(err, &f) {
		code := apierr.InvalidParams
		if errors.Is(err, icp.ErrTemporarilyUnavailable) {
			code = apierr.Unavailable
		}
		return &apierr.Error{Code: code, Message: "the ledger refused the transfer: " + f.Error()}
	}
	return &apierr.Error{Code: apierr.Unavailable, Message: "the ledger call failed", Data: err.Error()}
}
