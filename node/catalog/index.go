package catalog

import (
	"crypto/sha256"
	"sort"
	"sync"
	"time"

	"github.com/califusion/califusion/node/content"
	catalogwire "github.com/califusion/califusion/protocols/catalog"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Index lists the catalog by the time each model was added to this node's store, so a catalog
// sync answer ("what did you add since t?") reads only what is new instead of every record. It
// is built from the store by New and told of each model added after that.
type Index struct {
	s       *Service
	mu      sync.Mutex
	entries []indexEntry // sorted by at
}

var _ catalogwire.Source = (*Index)(nil)

type indexEntry struct {
	at time.Time
	id [32]byte
}

// loadIndex builds the index from the store's model records, and counts them per publisher for
// the catalog quota (s.perPublisher).
func loadIndex(s *Service) (*Index, error) {
	x := &Index{s: s}
	counts := map[peer.ID]int{}
	err := s.d.Store.Scan(store.ModelPrefix(), func(_ store.Key, decode func(any) error) error {
		var rec store.ModelRecord
		if err := decode(&rec); err != nil {
			return err
		}
		x.entries = append(x.entries, indexEntry{at: rec.Added, id: sha256.Sum256(rec.Manifest)})
		if pub, err := content.PublisherOf(rec.Manifest); err == nil {
			counts[pub]++
		}
		return nil
	})
	s.quotaMu.Lock()
	s.perPublisher = counts
	s.quotaMu.Unlock()
	sort.Slice(x.entries, func(i, j int) bool { return x.entries[i].at.Before(x.entries[j].at) })
	return x, err
}

// note records a model added at at (usually now, so appending keeps the order).
func (x *Index) note(id [32]byte, at time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i := len(x.entries)
	for i > 0 && x.entries[i-1].at.After(at) {
		i--
	}
	x.entries = append(x.entries, indexEntry{})
	copy(x.entries[i+1:], x.entries[i:])
	x.entries[i] = indexEntry{at: at, id: id}
}

// Added lists the models added at or after since, oldest first (catalogwire.Source).
func (x *Index) Added(since time.Time, fn func(id [32]byte, at time.Time) bool) error {
	x.mu.Lock()
	start := sort.Search(len(x.entries), func(i int) bool { return !x.entries[i].at.Before(since) })
	page := append([]indexEntry(nil), x.entries[start:]...)
	x.mu.Unlock()
	for _, e := range page {
		if !fn(e.id, e.at) {
			break
		}
	}
	return nil
}

// Manifest returns a model's signed manifest (catalogwire.Source).
func (x *Index) Manifest(id [32]byte) ([]byte, bool) {
	r, err := x.s.Get(id)
	if err != nil {
		return nil, false
	}
	return r.Signed, true
}
