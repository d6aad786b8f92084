package anchoring

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"

	"github.com/califusion/califusion/protocols/calimero"
	"github.com/libp2p/go-libp2p/core/peer"
)

// roundKind reports whether commitments of kind belong to a round (and so to the training
// context of the round model's lineage).
func roundKind(kind string) bool {
	switch kind {
	case calimero.KindUpdate, calimero.KindAggregate, calimero.KindRound, calimero.KindMaskedInput:
		return true
	}
	return false
}

// commitTarget picks where c is anchored: the training context of its model's lineage for a
// round's commitments when training contexts are on and the context can be had, else the
// catalog context.
func (s *Service) commitTarget(ctx context.Context, c *calimero.Commitment) Anchors {
	if !roundKind(c.Kind) || !s.tr.on || len(c.Model) != 32 {
		return s.anchors
	}
	lineage, ok := s.tr.deps.Lineages.LineageOf([32]byte(c.Model))
	if !ok {
		s.fallBack([32]byte(c.Model), "this node does not know the round's model")
		return s.anchors
	}
	if t := s.cached(lineage); t != nil {
		return t.anchors
	}
	if s.recentlyFailed(lineage) {
		return s.anchors
	}
	t, err := s.ensure(ctx, lineage, true)
	if err != nil {
		s.fallBack(lineage, err.Error())
		return s.anchors
	}
	return t.anchors
}

// RoundCommitments returns the verified commitments of round (its ID) of lineage, oldest first:
// read from the lineage's training context (joined first if this node may and has not yet) and
// from the catalog context (where they went while no training context could be had). A record
// counts only when its signature verifies, its signer is a coordinator the lineage root names,
// and its model belongs to the lineage; any other is dropped (any member can write any key).
func (s *Service) RoundCommitments(ctx context.Context, lineage [32]byte, round string) ([]*calimero.Commitment, error) {
	return s.commitments(ctx, lineage, func(c *calimero.Commitment) bool { return c.Round == round })
}

// LineageRounds returns the verified KindRound commitments of lineage, oldest first: the rounds
// its coordinators opened, from which another coordinator can re-open one (RoundCommitments then
// gives that round's accepted updates and masked inputs).
func (s *Service) LineageRounds(ctx context.Context, lineage [32]byte) ([]*calimero.Commitment, error) {
	return s.commitments(ctx, lineage, func(c *calimero.Commitment) bool { return c.Kind == calimero.KindRound })
}

func (s *Service) commitments(ctx context.Context, lineage [32]byte, keep func(*calimero.Commitment) bool) ([]*calimero.Commitment, error) {
	if !s.On() {
		return nil, nil
	}
	if s.tr.deps.Lineages == nil || s.tr.deps.Coordinators == nil {
		return nil, errors.New("anchoring: commitments cannot be verified before EnableTraining")
	}
	verify := func(record []byte) error {
		c, err := calimero.OpenCommitment(record)
		if err != nil {
			return err
		}
		signer, err := peer.IDFromBytes(c.Signer)
		if err != nil || !s.tr.deps.Coordinators.Authorises(lineage, signer) {
			return fmt.Errorf("commitment signed by %s, whom the lineage does not name", signer)
		}
		if l, ok := s.tr.deps.Lineages.LineageOf([32]byte(c.Model)); !ok || l != lineage {
			return errors.New("commitment for a model of another or an unknown lineage")
		}
		if !keep(c) {
			return errSkip
		}
		return nil
	}
	sources := []Anchors{s.anchors}
	var trainingErr error
	if s.tr.on {
		t, err := s.ensure(ctx, lineage, false)
		switch {
		case err == nil:
			sources = append([]Anchors{t.anchors}, sources...)
		case !errors.Is(err, ErrNoTraining):
			trainingErr = err
			s.log.Warn("read round commitments from the catalog context only", "err", err)
		}
	}
	seen := map[[32]byte]bool{}
	var out []*calimero.Commitment
	var readErr error
	for _, src := range sources {
		recs, _, err := src.List(ctx, verify)
		if err != nil {
			readErr = err
			continue
		}
		for _, r := range recs {
			id := sha256.Sum256(r)
			if seen[id] {
				continue
			}
			seen[id] = true
			c, err := calimero.OpenCommitment(r) // verified by List
			if err == nil {
				out = append(out, c)
			}
		}
	}
	if readErr != nil && len(out) == 0 {
		return nil, errors.Join(readErr, trainingErr)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt < out[j].CreatedAt })
	return out, nil
}

// errSkip marks a valid commitment the caller did not ask for.
var errSkip = errors.New("not asked for")
