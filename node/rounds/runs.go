package rounds

import (
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Runs reports whether coordinator runs a round on model that has not ended, as this node heard
// it on the rounds topic (or runs it itself): a coordinator of a threshold lineage releases its
// key share of a version to a fellow coordinator only then (node/keys RoundShare), so reading a
// version's plaintext takes a publicly announced round.
func (s *Service) Runs(model content.ModelID, coordinator peer.ID) bool {
	if coordinator == s.cfg.Self {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.holding[model] > 0 {
			return true // a round being opened on it, announced, collecting the key
		}
		for _, lr := range s.live {
			if string(lr.r.Model) == string(model[:]) {
				return true
			}
		}
		return false
	}
	runs := false
	want := coordinator.String()
	s.deps.Store.Scan(store.RoundPrefix(), func(_ store.Key, decode func(any) error) error {
		var rec store.RoundRecord
		if decode(&rec) != nil || rec.Coordinator != want || string(rec.Model) != string(model[:]) {
			return nil
		}
		runs = runs || rec.State == announce.RoundOpen || rec.State == announce.RoundAggregating
		return nil
	})
	return runs
}
