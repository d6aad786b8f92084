package node

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/califusion/califusion/protocols/calimero"
)

// fakeAnchors is a hand-written Anchors: a context's anchor keys in memory. Any member may
// overwrite any key, so a test can store bytes under an ID they do not hash to (overwrite), and
// make every call fail as an unreachable merod does (err).
type fakeAnchors struct {
	mu   sync.Mutex
	kv   map[[32]byte][]byte
	err  error // returned by every call when set
	gets int
}

var _ Anchors = (*fakeAnchors)(nil)

func newFakeAnchors() *fakeAnchors { return &fakeAnchors{kv: map[[32]byte][]byte{}} }

// overwrite stores record under id whatever it hashes to.
func (f *fakeAnchors) overwrite(id [32]byte, record []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kv[id] = append([]byte(nil), record...)
}

func (f *fakeAnchors) Put(ctx context.Context, record []byte) ([32]byte, error) {
	id := sha256.Sum256(record)
	if f.err != nil {
		return id, f.err
	}
	if len(record) > calimero.MaxAnchorSize {
		return id, fmt.Errorf("anchor record of %d bytes exceeds %d", len(record), calimero.MaxAnchorSize)
	}
	f.overwrite(id, record)
	return id, ctx.Err()
}

// check is calimero.DecodeAnchor's verification on raw bytes.
func (f *fakeAnchors) check(id [32]byte, record []byte, verify func([]byte) error) error {
	if sha256.Sum256(record) != id {
		return fmt.Errorf("%w: value does not hash to its key (overwritten by another member?)", calimero.ErrAnchorInvalid)
	}
	if err := verify(record); err != nil {
		return fmt.Errorf("%w: %v", calimero.ErrAnchorInvalid, err)
	}
	return nil
}

func (f *fakeAnchors) Get(ctx context.Context, id [32]byte, verify func(record []byte) error) ([]byte, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	if f.err != nil {
		return nil, "", f.err
	}
	record, ok := f.kv[id]
	if !ok {
		return nil, calimero.StateMissing, nil
	}
	if err := f.check(id, record, verify); err != nil {
		return nil, calimero.StateInvalid, err
	}
	return append([]byte(nil), record...), calimero.StateVerified, nil
}

func (f *fakeAnchors) List(ctx context.Context, verify func(record []byte) error) ([][]byte, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, 0, f.err
	}
	var out [][]byte
	invalid := 0
	for id, record := range f.kv {
		if f.check(id, record, verify) != nil {
			invalid++
			continue
		}
		out = append(out, append([]byte(nil), record...))
	}
	return out, invalid, ctx.Err()
}
