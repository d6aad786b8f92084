package rounds

import (
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/store"
)

// CountByState counts the rounds this node knows by state (metrics.RoundSource); every state is
// listed, with 0 when no round is in it.
func (s *Service) CountByState() (map[string]int, error) {
	out := map[string]int{announce.RoundOpen: 0, announce.RoundAggregating: 0, announce.RoundDone: 0, announce.RoundFailed: 0}
	err := s.deps.Store.Scan(store.RoundPrefix(), func(_ store.Key, decode func(any) error) error {
		var rec store.RoundRecord
		if decode(&rec) == nil {
			out[rec.State]++
		}
		return nil
	})
	return out, err
}
