package store

import (
	"errors"
	"time"
)

// Penalty rules: an offence keeps a peer penalised for PenaltyBase, doubled for each earlier
// offence it is still remembered for, at most PenaltyMax; a peer with no offence for PenaltyForget
// starts again from nothing (its record is deleted when next read).
const (
	PenaltyBase   = 30 * time.Minute
	PenaltyMax    = 24 * time.Hour
	PenaltyForget = 7 * 24 * time.Hour
)

// Penalty remembers a peer that served data failing verification (a chunk not matching its
// Merkle leaf, a leaf list not matching the root, a malformed or oversized frame).
type Penalty struct {
	Offences int       `cbor:"1,keyasint"` // remembered offences, the last included
	Last     time.Time `cbor:"2,keyasint"` // time of the last offence
	Until    time.Time `cbor:"3,keyasint"` // penalised until then
	Reason   string    `cbor:"4,keyasint"` // what the last offence was, for logs and operators
}

// Active reports whether the penalty still holds at now.
func (p Penalty) Active(now time.Time) bool { return now.Before(p.Until) }

// maxReason bounds the stored reason (it quotes a peer's error).
const maxReason = 256

// Penalise records an offence by peer id at now and returns the updated penalty.
func (s *Store) Penalise(id, reason string, now time.Time) (Penalty, error) {
	var p Penalty
	err := s.Update(func(tx *Tx) error {
		p = Penalty{}
		if err := tx.Get(PenaltyKey(id), &p); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if now.Sub(p.Last) > PenaltyForget {
			p = Penalty{}
		}
		p.Offences++
		d := PenaltyMax
		if p.Offences <= 16 {
			d = min(PenaltyMax, PenaltyBase<<(p.Offences-1))
		}
		if len(reason) > maxReason {
			reason = reason[:maxReason]
		}
		p.Last, p.Until, p.Reason = now, now.Add(d), reason
		return tx.Put(PenaltyKey(id), &p)
	})
	return p, err
}

// PenaltyOf returns peer id's penalty if it is active at now. A record forgotten by now is
// deleted.
func (s *Store) PenaltyOf(id string, now time.Time) (Penalty, bool, error) {
	var p Penalty
	switch err := s.Get(PenaltyKey(id), &p); {
	case errors.Is(err, ErrNotFound):
		return Penalty{}, false, nil
	case err != nil:
		return Penalty{}, false, err
	}
	if now.Sub(p.Last) > PenaltyForget {
		return Penalty{}, false, s.Delete(PenaltyKey(id))
	}
	return p, p.Active(now), nil
}
