package fetch

import (
	"errors"
	"fmt"
	"sync"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/store"
	"github.com/califusion/califusion/store/blob"
)

// errNoChunk is returned when a chunk is asked for that this node does not hold.
var errNoChunk = errors.New("chunk not held")

// ChunkStore keeps models' ciphertext (store/blob files) and the record of which chunks are
// durable (the "have" bitmap in the store). It serves the chunks protocol and receives fetched
// chunks; a chunk is written to its blob first and marked present only after Flush has synced
// the blob, so a crash loses at most unflushed chunks and never marks a torn one.
type ChunkStore struct {
	st    *store.Store
	blobs *blob.Dir

	mu   sync.Mutex
	open map[[32]byte]*modelChunks
}

type modelChunks struct {
	mu   sync.Mutex
	file *blob.File
	// have grows as chunks become present: a model in the catalog that this node holds none of
	// costs no bitmap, whatever chunk count its manifest claims.
	have     store.Bitmap
	held     uint64   // chunks set in have
	pending  []uint64 // written, not yet synced and recorded
	writeErr error    // the first failed background write
	removed  bool     // set by Remove: no write starts and no flush records after it

	// flushing is held across a flush's sync and store write, and by Remove while it deletes
	// the records, so a flush that began before Remove cannot write the have-bitmap back.
	flushing sync.Mutex

	writing  sync.WaitGroup
	inFlight chan struct{} // bounds background writes
}

// maxWritesInFlight bounds the chunks being written to one blob at once (each holds its buffer).
const maxWritesInFlight = 8

// NewChunkStore returns a chunk store over st (the have bitmaps, leaf lists) and blobs (the
// ciphertext). It opens no blob until a model is prepared.
func NewChunkStore(st *store.Store, blobs *blob.Dir) *ChunkStore {
	return &ChunkStore{st: st, blobs: blobs, open: map[[32]byte]*modelChunks{}}
}

// prepare opens (or creates) model id's blob with its layout and loads its bitmap.
func (c *ChunkStore) prepare(id [32]byte, l blob.Layout) (*modelChunks, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.open[id]; ok {
		return m, nil
	}
	f, err := c.blobs.OpenDirect(id, l)
	if err != nil {
		return nil, err
	}
	have, err := c.stored(id, l.Chunks)
	if err != nil {
		f.Close()
		return nil, err
	}
	m := &modelChunks{file: f, have: have, held: have.Count(), inFlight: make(chan struct{}, maxWritesInFlight)}
	c.open[id] = m
	return m, nil
}

// stored returns id's bitmap of a chunks-chunk model as last recorded in the store (nil when
// none is, or when the record does not fit the model), without opening the model's blob.
func (c *ChunkStore) stored(id [32]byte, chunks uint64) (store.Bitmap, error) {
	var b []byte
	switch err := c.st.Get(store.HaveKey(id), &b); {
	case err == nil && uint64(len(b)) <= (chunks+7)/8:
		clearBeyond(b, chunks)
		return b, nil
	case err == nil, errors.Is(err, store.ErrNotFound):
		return nil, nil
	default:
		return nil, err
	}
}

// Held returns how many chunks of a chunks-chunk model id are durably held. A model that is
// not open is counted from the store, without opening (or creating) its blob: listing the
// catalog must not open a file for each model in it.
func (c *ChunkStore) Held(id [32]byte, chunks uint64) uint64 {
	if _, ok := c.get(id); ok {
		return c.Count(id)
	}
	b, _ := c.stored(id, chunks)
	return b.Count()
}

// clearBeyond clears the bits of b at chunk indices n and above.
func clearBeyond(b store.Bitmap, n uint64) {
	for i := n; i/8 < uint64(len(b)); i++ {
		b[i/8] &^= 1 << (i % 8)
	}
}

// set marks chunk i present, growing the bitmap as needed (i is within the layout: the blob
// refused the write otherwise). Call with m.mu held.
func (m *modelChunks) set(i uint64) {
	if m.have.Has(i) {
		return
	}
	if need := i/8 + 1; need > uint64(len(m.have)) {
		m.have = append(m.have, make(store.Bitmap, need-uint64(len(m.have)))...)
	}
	m.have.Set(i)
	m.held++
}

func (c *ChunkStore) get(id [32]byte) (*modelChunks, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.open[id]
	return m, ok
}

// has reports whether chunk i of id is durably held.
func (c *ChunkStore) has(id [32]byte, i uint64) bool {
	m, ok := c.get(id)
	if !ok {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.have.Has(i)
}

// bitmap returns a copy of id's bitmap (nil when the model is not prepared).
func (c *ChunkStore) bitmap(id [32]byte) store.Bitmap {
	m, ok := c.get(id)
	if !ok {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return append(store.Bitmap(nil), m.have...)
}

// Count returns how many chunks of id are held (0 when the model is not prepared).
func (c *ChunkStore) Count(id [32]byte) uint64 {
	m, ok := c.get(id)
	if !ok {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held
}

// heldBytes returns the ciphertext size of id's durably held chunks, in constant time (a fetch
// reports it after every flush).
func (c *ChunkStore) heldBytes(id [32]byte) uint64 {
	m, ok := c.get(id)
	if !ok {
		return 0
	}
	l := m.file.Layout()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held == 0 {
		return 0
	}
	full := l.ChunkSize + blob.Overhead
	n := m.held * full
	if m.have.Has(l.Chunks - 1) { // the last chunk may be shorter
		last, _ := l.CipherLen(l.Chunks - 1)
		n = n - full + uint64(last)
	}
	return n
}

// read returns chunk i of id if it is held.
func (c *ChunkStore) read(id [32]byte, i uint64, buf []byte) ([]byte, error) {
	m, ok := c.get(id)
	if !ok {
		return nil, fmt.Errorf("%w: model %x", errNoChunk, id[:6])
	}
	m.mu.Lock()
	held := m.have.Has(i)
	m.mu.Unlock()
	if !held {
		return nil, fmt.Errorf("%w: model %x chunk %d", errNoChunk, id[:6], i)
	}
	return m.file.ReadChunk(i, buf)
}

// write copies a verified chunk and stores it in the background; the chunk becomes present at
// the first flush after its write completed. A failed write fails every later write
// and drain. Writes run several at a time, so a slow disk write (O_DIRECT is synchronous) does
// not stall the stream the chunk came from.
func (c *ChunkStore) write(id [32]byte, i uint64, ct []byte) error {
	m, ok := c.get(id)
	if !ok {
		return fmt.Errorf("model %x is not prepared", id[:6])
	}
	m.mu.Lock()
	err := m.writeErr
	if err == nil && m.removed {
		err = fmt.Errorf("model %x was removed", id[:6])
	}
	if err == nil {
		m.writing.Add(1) // under m.mu, so it never races Remove's Wait
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}
	m.inFlight <- struct{}{}
	buf := blob.Buffer(len(ct))
	copy(buf, ct)
	go func() {
		defer func() { <-m.inFlight; m.writing.Done(); blob.Release(buf) }()
		err := m.file.WriteChunk(i, buf)
		m.mu.Lock()
		defer m.mu.Unlock()
		if err != nil {
			if m.writeErr == nil {
				m.writeErr = err
			}
			return
		}
		m.pending = append(m.pending, i)
	}()
	return nil
}

// drain waits for id's background writes (call it once no more writes are coming) and returns
// the first write error.
func (c *ChunkStore) drain(id [32]byte) error {
	m, ok := c.get(id)
	if !ok {
		return nil
	}
	m.writing.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writeErr
}

// flush syncs id's blob and records every pending chunk as present, in one store transaction.
func (c *ChunkStore) flush(id [32]byte) error {
	m, ok := c.get(id)
	if !ok {
		return nil
	}
	return c.flushModel(id, m)
}

// flushModel is flush of m, the open blob of id (which Remove may have dropped since).
func (c *ChunkStore) flushModel(id [32]byte, m *modelChunks) error {
	m.flushing.Lock()
	defer m.flushing.Unlock()
	m.mu.Lock()
	pending := m.pending
	m.pending = nil
	removed := m.removed
	m.mu.Unlock()
	if removed {
		return fmt.Errorf("model %x was removed", id[:6])
	}
	if len(pending) == 0 {
		return nil
	}
	if err := m.file.Sync(); err != nil {
		m.mu.Lock()
		m.pending = append(pending, m.pending...)
		m.mu.Unlock()
		return err
	}
	m.mu.Lock()
	for _, i := range pending {
		m.set(i)
	}
	snapshot := append(store.Bitmap(nil), m.have...)
	m.mu.Unlock()
	return c.st.Put(store.HaveKey(id), []byte(snapshot))
}

// Blobs returns the blob folder the store keeps ciphertext in (a publisher packages into it).
func (c *ChunkStore) Blobs() *blob.Dir { return c.blobs }

// PutComplete records, inside the publisher's transaction tx, that this node holds every chunk
// of a model it has just packaged into its blob: its leaf list and a full have-bitmap.
func (c *ChunkStore) PutComplete(tx *store.Tx, id content.ModelID, leaves [][32]byte, chunks uint64) error {
	if err := tx.Put(store.LeavesKey(id), content.LeavesToBytes(leaves)); err != nil {
		return err
	}
	have := store.NewBitmap(chunks)
	for i := uint64(0); i < chunks; i++ {
		have.Set(i)
	}
	return tx.Put(store.HaveKey(id), []byte(have))
}

// Remove drops every local trace of model id's ciphertext: it closes the model's open blob
// (after its background writes), deletes its have-bitmap and leaf list from the store and its
// blob file from disk. A later fetch starts over from nothing. The caller makes sure no fetch of
// id runs; a chunk being served at that moment fails.
func (c *ChunkStore) Remove(id [32]byte) error {
	c.mu.Lock() // held throughout: prepare must see the model either whole or gone
	defer c.mu.Unlock()
	m, open := c.open[id]
	if open {
		m.flushing.Lock() // a running flush ends before the records go, and none records after
		defer m.flushing.Unlock()
		m.mu.Lock()
		m.removed = true
		m.mu.Unlock()
	}
	err := c.st.Update(func(tx *store.Tx) error {
		if err := tx.Delete(store.HaveKey(id)); err != nil {
			return err
		}
		return tx.Delete(store.LeavesKey(id))
	})
	if err != nil {
		if open {
			m.mu.Lock()
			m.removed = false
			m.mu.Unlock()
		}
		return fmt.Errorf("remove model %x: %w", id[:6], err)
	}
	var errs []error
	if open {
		delete(c.open, id)
		m.writing.Wait()
		errs = append(errs, m.file.Close())
	}
	errs = append(errs, c.blobs.Remove(id))
	return errors.Join(errs...)
}

// DiskBytes returns the bytes model id's blob file takes on disk (0 when there is none).
func (c *ChunkStore) DiskBytes(id [32]byte) uint64 { return c.blobs.Size(id) }

// Usage returns the bytes every blob file takes on disk together.
func (c *ChunkStore) Usage() (uint64, error) {
	_, n, err := c.blobs.Usage()
	return n, err
}

// Close closes every open blob.
func (c *ChunkStore) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for id, m := range c.open {
		m.writing.Wait()
		errs = append(errs, m.file.Close())
		delete(c.open, id)
	}
	return errors.Join(errs...)
}
