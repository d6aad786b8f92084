package anchoring

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Training contexts. The configured context (calimero.context_id) is the catalog context:
// manifests and each lineage's training record live there. A lineage's training context is a
// Calimero context in a namespace of its own, created by a coordinator of the lineage on its
// merod; the coordinator signs a TrainingRecord naming it and stores it in the catalog context
// under calimero.TrainingKey. Other coordinators and paying trainers ask the record's
// coordinator for an invitation (calimero/invite/1) and join the namespace on their own merod.
// Round commitments (update, aggregate, round, masked_input) are anchored there.

// ErrNoTraining is returned when a lineage has no training context yet and this node may not
// create one.
var ErrNoTraining = errors.New("the lineage has no training context yet")

// trainingRetry is how long a failed attempt to get a lineage's training context is remembered:
// Commit falls back to the catalog context meanwhile instead of retrying on every commitment.
const trainingRetry = time.Minute

// Training is a lineage's training context as this node uses it.
type Training struct {
	Lineage     [32]byte
	ContextID   string // base58
	NamespaceID string // 64 hex
	Executor    string // this node's member key in the context
	Coordinator peer.ID
	Created     bool // this node created it
}

type training struct {
	Training
	anchors Anchors
}

// trainingState is the service's training-context bookkeeping.
type trainingState struct {
	on   bool
	deps TrainingDeps

	ensureMu sync.Mutex // one creation or join at a time

	mu       sync.Mutex
	byLin    map[[32]byte]*training
	failed   map[[32]byte]time.Time // last failed attempt per lineage
	fellBack map[[32]byte]bool      // lineages whose fallback to the catalog was logged
}

// EnableTraining turns training contexts on with deps (the node calls it once its catalog, keys
// and kex server exist; before, and when calimero.training_contexts is off, every commitment
// goes to the catalog context). Call it before the node serves requests.
func (s *Service) EnableTraining(deps TrainingDeps) {
	s.tr.deps = deps
	s.tr.on = s.client != nil && s.trainingCfg && deps.Lineages != nil && deps.Coordinators != nil
}

// TrainingOn reports whether training contexts are on.
func (s *Service) TrainingOn() bool { return s.tr.on }

// cached returns the lineage's training context if this node has one.
func (s *Service) cached(lineage [32]byte) *training {
	s.tr.mu.Lock()
	defer s.tr.mu.Unlock()
	return s.tr.byLin[lineage]
}

// Training returns the lineage's training context, joining it (after asking its coordinator for
// an invitation) or, on a coordinator of the lineage when none exists yet, creating it. Errors
// are *apierr.Error: not_found when there is none yet, the coordinator's refusal, unavailable.
func (s *Service) Training(ctx context.Context, lineage [32]byte) (*Training, error) {
	if !s.tr.on {
		return nil, apierr.Errorf(apierr.Unavailable, "training contexts are off on this node: set calimero.url and calimero.training_contexts")
	}
	t, err := s.ensure(ctx, lineage, s.tr.deps.Coordinators.Authorises(lineage, s.self))
	var coded *apierr.Error
	switch {
	case err == nil:
	case errors.As(err, &coded):
		return nil, err
	case errors.Is(err, ErrNoTraining):
		return nil, apierr.Errorf(apierr.NotFound, "lineage %x has no training context yet: ask again once a coordinator of the lineage opened a round", lineage[:6])
	default:
		return nil, apierr.Errorf(apierr.Unavailable, "the training context of lineage %x cannot be had now (%v): check calimero.url and try again", lineage[:6], err)
	}
	out := t.Training
	return &out, nil
}

// JoinTraining makes this node a member of the lineage's existing training context, so that it
// can read the round commitments anchored there (ErrNoTraining when there is none yet); with
// training contexts off it does nothing.
func (s *Service) JoinTraining(ctx context.Context, lineage [32]byte) error {
	if !s.tr.on {
		return nil
	}
	// Join only: the coordinator that opens the lineage's first round creates the context (on
	// its first commitment); a second one created here, racing it, would split the lineage's
	// commitments over two contexts.
	_, err := s.ensure(ctx, lineage, false)
	return err
}

// ensure returns the lineage's training context: cached, or found in the catalog context and
// joined, or (mayCreate) created.
func (s *Service) ensure(ctx context.Context, lineage [32]byte, mayCreate bool) (*training, error) {
	if t := s.cached(lineage); t != nil {
		return t, nil
	}
	s.tr.ensureMu.Lock()
	defer s.tr.ensureMu.Unlock()
	if t := s.cached(lineage); t != nil {
		return t, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t, err := s.findOrJoin(ctx, lineage, mayCreate)
	s.tr.mu.Lock()
	defer s.tr.mu.Unlock()
	if err != nil {
		s.tr.failed[lineage] = time.Now()
		return nil, err
	}
	delete(s.tr.failed, lineage)
	s.tr.byLin[lineage] = t
	return t, nil
}

func (s *Service) findOrJoin(ctx context.Context, lineage [32]byte, mayCreate bool) (*training, error) {
	rec, err := s.trainingRecord(ctx, lineage)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		if !mayCreate {
			return nil, fmt.Errorf("%w: lineage %x (a coordinator of the lineage creates it when it opens a round)", ErrNoTraining, lineage[:6])
		}
		return s.create(ctx, lineage)
	}
	// Already a member (we created it, joined before a restart, or share a merod with a member).
	ids, err := s.client.IdentitiesOwned(ctx, rec.ContextID)
	if err != nil && !errors.Is(err, calimero.ErrAdminNotFound) {
		return nil, err
	}
	if len(ids) > 0 {
		return s.adopt(rec, ids[0], rec.CoordinatorID() == s.self), nil
	}
	if rec.CoordinatorID() == s.self {
		return nil, fmt.Errorf("this node's training record for lineage %x names context %s, which its merod (%s) does not hold: was calimero.url changed?", lineage[:6], rec.ContextID, s.cfgURL)
	}
	if s.tr.deps.Inviter == nil {
		return nil, fmt.Errorf("lineage %x has a training context but this node cannot ask for invitations", lineage[:6])
	}
	rep, err := s.tr.deps.Inviter.RequestInvite(ctx, rec.CoordinatorID(), lineage)
	if err != nil {
		return nil, err
	}
	if rep.NamespaceID != rec.NamespaceID || rep.ContextID != rec.ContextID {
		return nil, fmt.Errorf("coordinator %s invited into context %s of namespace %s, but its record names context %s", rec.CoordinatorID(), rep.ContextID, rep.NamespaceID, rec.ContextID)
	}
	if _, err := s.client.JoinNamespace(ctx, rep.NamespaceID, rep.Invitation); err != nil {
		return nil, fmt.Errorf("join namespace %s on %s: %w", rep.NamespaceID, s.cfgURL, err)
	}
	// The namespace's contexts are followed on joining; join explicitly when this merod did not.
	executor := ""
	if ids, err := s.client.IdentitiesOwned(ctx, rec.ContextID); err == nil && len(ids) > 0 {
		executor = ids[0]
	} else {
		j, err := s.client.JoinContext(ctx, rec.ContextID)
		if err != nil {
			return nil, fmt.Errorf("join training context %s: %w", rec.ContextID, err)
		}
		executor = j.MemberPublicKey
	}
	s.log.Info("joined the training context", "lineage", hex.EncodeToString(lineage[:]), "context", rec.ContextID, "invited_by", rec.CoordinatorID())
	return s.adopt(rec, executor, false), nil
}

// create makes a namespace and a context in it on this node's merod, of the catalog context's
// application, and anchors the signed record naming it in the catalog context.
func (s *Service) create(ctx context.Context, lineage [32]byte) (*training, error) {
	if !s.tr.deps.Coordinators.Authorises(lineage, s.self) {
		return nil, apierr.Errorf(apierr.Role, "this node is not a coordinator of lineage %x: only its coordinators create its training context", lineage[:6])
	}
	info, err := s.client.Context(ctx, s.client.ContextID())
	if err != nil {
		return nil, fmt.Errorf("read the catalog context's application: %w", err)
	}
	ns, err := s.client.CreateNamespace(ctx, info.ApplicationID, "califusion-training-"+hex.EncodeToString(lineage[:8]))
	if err != nil {
		return nil, fmt.Errorf("create namespace: %w", err)
	}
	cc, err := s.client.CreateContext(ctx, info.ApplicationID, ns)
	if err != nil {
		return nil, fmt.Errorf("create training context: %w", err)
	}
	rec := &calimero.TrainingRecord{Lineage: lineage[:], ContextID: cc.ContextID, NamespaceID: ns, CreatedAt: time.Now().UnixMilli()}
	value, err := calimero.SignTraining(rec, s.signer)
	if err != nil {
		return nil, err
	}
	if err := s.client.Set(ctx, calimero.TrainingKey(lineage, s.self), value); err != nil {
		return nil, fmt.Errorf("anchor the training record in the catalog context: %w", err)
	}
	s.log.Info("created the training context", "lineage", hex.EncodeToString(lineage[:]), "context", cc.ContextID, "namespace", ns)
	return s.adopt(rec, cc.MemberPublicKey, true), nil
}

func (s *Service) adopt(rec *calimero.TrainingRecord, executor string, created bool) *training {
	return &training{
		Training: Training{Lineage: [32]byte(rec.Lineage), ContextID: rec.ContextID, NamespaceID: rec.NamespaceID, Executor: executor, Coordinator: rec.CoordinatorID(), Created: created},
		anchors:  Instrument(calimero.NewAnchors(s.client.In(rec.ContextID, executor)), s.metrics),
	}
}

// trainingRecord reads the lineage's training records from the catalog context and returns the
// earliest valid one (nil: none). A record is valid when it opens (signature, key) and its
// coordinator is one the lineage root names; others, e.g. forged by any other member of the
// catalog context, are skipped.
func (s *Service) trainingRecord(ctx context.Context, lineage [32]byte) (*calimero.TrainingRecord, error) {
	all, err := s.client.Entries(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the catalog context: %w", err)
	}
	prefix := calimero.TrainingLineagePrefix(lineage)
	var valid []*calimero.TrainingRecord
	for k, v := range all {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		rec, err := calimero.OpenTraining(k, v)
		if err != nil {
			s.log.Debug("training record skipped", "key", k, "err", err)
			continue
		}
		if !s.tr.deps.Coordinators.Authorises(lineage, rec.CoordinatorID()) {
			s.log.Warn("training record signed by a peer the lineage does not name skipped", "key", k, "signer", rec.CoordinatorID())
			continue
		}
		valid = append(valid, rec)
	}
	if len(valid) == 0 {
		return nil, nil
	}
	sort.Slice(valid, func(i, j int) bool {
		if valid[i].CreatedAt != valid[j].CreatedAt {
			return valid[i].CreatedAt < valid[j].CreatedAt
		}
		return valid[i].ContextID < valid[j].ContextID
	})
	return valid[0], nil
}

// recentlyFailed reports whether getting the lineage's training context failed less than
// trainingRetry ago.
func (s *Service) recentlyFailed(lineage [32]byte) bool {
	s.tr.mu.Lock()
	defer s.tr.mu.Unlock()
	at, ok := s.tr.failed[lineage]
	return ok && time.Since(at) < trainingRetry
}

// fallBack logs once per lineage that its commitments go to the catalog context, and why.
func (s *Service) fallBack(lineage [32]byte, why string) {
	s.tr.mu.Lock()
	logged := s.tr.fellBack[lineage]
	s.tr.fellBack[lineage] = true
	s.tr.mu.Unlock()
	if !logged {
		s.log.Warn("round commitments go to the catalog context", "lineage", hex.EncodeToString(lineage[:]), "reason", why)
	}
}
