package store

import (
	"errors"
	"fmt"
)

// SchemaVersion is the version of the key schema this code reads and writes.
const SchemaVersion = 1

// A migration upgrades a store by one schema version: it rewrites, inside tx, every record whose
// layout or encoding the next version changes.
type migration func(tx *Tx) error

// migrations[v] upgrades a store at schema version v to v+1; a store whose version is missing is
// at version 0. Open runs the steps from the stored version up to SchemaVersion, each in one
// transaction with the new version stamped in it, so a crash between steps resumes at the step
// that did not commit. A change to a record's encoding or a key layout bumps SchemaVersion and
// adds its step here, with a test that opens a datadir written the old way.
//
// One transaction has to hold a whole step; a step that may rewrite more than badger takes in one
// transaction has to be written so that running it again after a partial run is harmless.
var migrations = map[uint64]migration{
	// 0 → 1: a datadir with no version. Every store has been stamped 1 since the first one was
	// written, so this is a new, empty store: there is nothing to convert.
	0: func(*Tx) error { return nil },
	// Version 1 holds the records of the Schema table. Rounds and reports were first stored as
	// the gossip and admin-API types (announce.Round, adminrpc.RoundReport); RoundRecord and
	// ReportRecord keep their CBOR byte for byte, so moving to them needed no step.
}

// migrate brings the store to version target with steps, or refuses a store written by a newer
// califusiond.
func (s *Store) migrate(steps map[uint64]migration, target uint64) error {
	var v uint64
	switch err := s.Get(schemaKey, &v); {
	case errors.Is(err, ErrNotFound):
		v = 0
	case err != nil:
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > target {
		return fmt.Errorf("store schema version %d is not supported by this califusiond (it reads version %d): run a califusiond at least as new as the one that last wrote this datadir", v, target)
	}
	for ; v < target; v++ {
		step, ok := steps[v]
		if !ok {
			return fmt.Errorf("store schema version %d cannot be upgraded to %d: this califusiond has no migration from it", v, target)
		}
		err := s.Update(func(tx *Tx) error {
			if err := step(tx); err != nil {
				return err
			}
			return tx.Put(schemaKey, v+1)
		})
		if err != nil {
			return fmt.Errorf("migrate store schema from version %d to %d: %w", v, v+1, err)
		}
		if v > 0 {
			s.log.Info("store schema migrated", "from", v, "to", v+1)
		}
	}
	return nil
}
