package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/fxamacker/cbor/v2"
)

// ErrNotFound is returned when a key has no value.
var ErrNotFound = errors.New("not found")

var (
	encMode = mustEncMode()
	decMode = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}

func mustDecMode() cbor.DecMode {
	m, err := cbor.DecOptions{MaxArrayElements: 1 << 20, MaxMapPairs: 1 << 20}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

// Options configure Open.
type Options struct {
	// GCInterval is how often the value log is garbage-collected; 0 disables the GC loop.
	GCInterval time.Duration
	// GCDiscardRatio is the stale share at which a value-log file is rewritten.
	GCDiscardRatio float64
	// InMemory keeps everything in memory (tests).
	InMemory bool
	// Logger receives GC and badger messages; nil discards them.
	Logger *slog.Logger
}

// Store is a node's badger database.
type Store struct {
	db     *badger.DB
	opts   Options
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	syncs  atomic.Uint64
}

// Open opens (or creates) the database in dir and brings its schema to SchemaVersion
// (migrate.go); a datadir written by a newer califusiond is refused.
func Open(dir string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bo := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{log}).
		WithInMemory(opts.InMemory).
		// Small tables and caches: node state is metadata, not bulk data, and the daemon
		// should idle in tens of MiB.
		WithMemTableSize(8 << 20).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithNumCompactors(2)
	if opts.InMemory {
		bo.Dir, bo.ValueDir = "", ""
	}
	// Badger creates its files 0666 and folders 0700 less the umask; the daemon runs with umask
	// 077 and node.OpenDatadir takes group and other bits off whatever an older run left.
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	s := &Store{db: db, opts: opts, log: log}
	if err := s.migrate(migrations, SchemaVersion); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Start launches the background value-log GC.
func (s *Store) Start() {
	if s.opts.GCInterval <= 0 || s.opts.InMemory {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.opts.GCInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.runGC()
			}
		}
	}()
}

// runGC rewrites value-log files until badger reports nothing left worth rewriting.
func (s *Store) runGC() {
	for n := 0; n < 16; n++ {
		err := s.db.RunValueLogGC(s.opts.GCDiscardRatio)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return
		}
		if err != nil {
			s.log.Warn("value log gc failed", "err", err)
			return
		}
		s.log.Debug("value log file rewritten")
	}
}

// Close stops the GC loop and closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		err = s.db.Close()
	})
	return err
}

// Get decodes the value at key into v, or returns ErrNotFound.
func (s *Store) Get(key Key, v any) error {
	return s.View(func(tx *Tx) error { return tx.Get(key, v) })
}

// Put encodes v and stores it at key.
func (s *Store) Put(key Key, v any) error {
	return s.Update(func(tx *Tx) error { return tx.Put(key, v) })
}

// PutSync is Put made durable before it returns: badger does not sync each write (a power cut
// may lose the last ones), so this one, and every write before it, is synced to disk. For the few
// records whose loss costs money, such as a payment about to be sent and the block it landed in.
func (s *Store) PutSync(key Key, v any) error {
	if err := s.Put(key, v); err != nil {
		return err
	}
	return s.Sync()
}

// Sync makes every write so far durable (badger's write-ahead log and value log; a no-op for an
// in-memory store).
func (s *Store) Sync() error {
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync store: %w", err)
	}
	s.syncs.Add(1)
	return nil
}

// Syncs returns how many times Sync (or PutSync) has succeeded since the store was opened.
func (s *Store) Syncs() uint64 { return s.syncs.Load() }

// Has reports whether key is present.
func (s *Store) Has(key Key) (bool, error) {
	var has bool
	err := s.View(func(tx *Tx) error {
		var err error
		has, err = tx.Has(key)
		return err
	})
	return has, err
}

// Delete removes key; deleting a missing key is not an error.
func (s *Store) Delete(key Key) error {
	return s.Update(func(tx *Tx) error { return tx.Delete(key) })
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(tx *Tx) error) error {
	return s.db.View(func(txn *badger.Txn) error { return fn(&Tx{txn: txn}) })
}

// Update runs fn in a read-write transaction: every write in fn commits, or none does. A
// transaction that conflicts with a concurrent one is retried a few times.
func (s *Store) Update(fn func(tx *Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.db.Update(func(txn *badger.Txn) error { return fn(&Tx{txn: txn}) })
		if errors.Is(err, badger.ErrConflict) && attempt < 5 {
			continue
		}
		return err
	}
}

// Tx is a store transaction.
type Tx struct{ txn *badger.Txn }

// Get decodes the value at key into v, or returns ErrNotFound.
func (tx *Tx) Get(key Key, v any) error {
	item, err := tx.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	return item.Value(func(b []byte) error {
		if err := decMode.Unmarshal(b, v); err != nil {
			return fmt.Errorf("decode %s: %w", key, err)
		}
		return nil
	})
}

// Has reports whether key has a value.
func (tx *Tx) Has(key Key) (bool, error) {
	_, err := tx.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Put encodes v and stores it at key.
func (tx *Tx) Put(key Key, v any) error {
	b, err := encMode.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if err := tx.txn.Set(key, b); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Delete removes key.
func (tx *Tx) Delete(key Key) error {
	if err := tx.txn.Delete(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// Scan calls fn for every key under prefix, in key order, with a decoder for its value. Returning
// an error from fn stops the scan and returns that error.
func (tx *Tx) Scan(prefix Key, fn func(key Key, decode func(v any) error) error) error {
	it := tx.txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		key := Key(item.KeyCopy(nil))
		decode := func(v any) error {
			return item.Value(func(b []byte) error {
				if err := decMode.Unmarshal(b, v); err != nil {
					return fmt.Errorf("decode %s: %w", key, err)
				}
				return nil
			})
		}
		if err := fn(key, decode); err != nil {
			return err
		}
	}
	return nil
}

// Scan is Tx.Scan in its own read-only transaction.
func (s *Store) Scan(prefix Key, fn func(key Key, decode func(v any) error) error) error {
	return s.View(func(tx *Tx) error { return tx.Scan(prefix, fn) })
}

// badgerLogger routes badger's printf-style logs into slog at debug (info and below) and warn.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Warn("badger: " + fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn("badger: " + fmt.Sprintf(f, a...)) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug("badger: " + fmt.Sprintf(f, a...)) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.l.Debug("badger: " + fmt.Sprintf(f, a...)) }
