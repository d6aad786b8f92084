// Package anchoringtest provides Fake, a hand-written in-memory anchoring.Anchors, so anchoring
// policy runs in tests without an emulated merod.
package anchoringtest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/califusion/califusion/node/anchoring"
	"github.com/califusion/califusion/protocols/calimero"
)

// Fake is a hand-written Anchors: a context's anchor keys in memory. Any member may overwrite any
// key, so a test can store bytes under an ID they do not hash to (Overwrite), and make every call
// fail as an unreachable merod does (SetErr).
type Fake struct {
	mu   sync.Mutex
	kv   map[[32]byte][]byte
	err  error // returned by every call when set
	gets int
}

var _ anchoring.Anchors = (*Fake)(nil)

// NewFake returns an empty fake context.
func NewFake() *Fake { return &Fake{kv: map[[32]byte][]byte{}} }

// Overwrite stores record under id whatever it hashes to.
func (f *Fake) Overwrite(id [32]byte, record []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kv[id] = append([]byte(nil), record...)
}

// SetErr makes every call fail with err (nil: answer normally).
func (f *Fake) SetErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// Gets returns how many Get calls the fake received.
func (f *Fake) Gets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets
}

// Put anchors record under its SHA-256, refusing one larger than calimero.MaxAnchorSize.
func (f *Fake) Put(ctx context.Context, record []byte) ([32]byte, error) {
	id := sha256.Sum256(record)
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return id, err
	}
	if len(record) > calimero.MaxAnchorSize {
		return id, fmt.Errorf("anchor record of %d bytes exceeds %d", len(record), calimero.MaxAnchorSize)
	}
	f.Overwrite(id, record)
	return id, ctx.Err()
}

// check is calimero.DecodeAnchor's verification on raw bytes.
func (f *Fake) check(id [32]byte, record []byte, verify func([]byte) error) error {
	if sha256.Sum256(record) != id {
		return fmt.Errorf("%w: value does not hash to its key (overwritten by another member?)", calimero.ErrAnchorInvalid)
	}
	if err := verify(record); err != nil {
		return fmt.Errorf("%w: %v", calimero.ErrAnchorInvalid, err)
	}
	return nil
}

// Get reads and verifies the anchor of id as calimero.Anchors does.
func (f *Fake) Get(ctx context.Context, id [32]byte, verify func(record []byte) error) ([]byte, string, error) {
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

// List returns every anchored record that hashes to its key and verify accepts, and how many
// others were skipped.
func (f *Fake) List(ctx context.Context, verify func(record []byte) error) ([][]byte, int, error) {
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
