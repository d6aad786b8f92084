package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/calimero"
)

// Anchors is what the node uses of Calimero: signed manifests anchored under their SHA-256 in a
// context, read back and verified. *calimero.Anchors implements it; tests use the hand-written
// fake beside it (anchorfake_test.go) so anchoring policy runs without an emulated merod.
type Anchors interface {
	// Put anchors a signed record and returns its ID (the SHA-256 of its bytes).
	Put(ctx context.Context, record []byte) ([32]byte, error)
	// Get reads and verifies the anchor of id: the state is verified, missing or invalid, with
	// err the reason for invalid; a failure to read at all has state "" and err set.
	Get(ctx context.Context, id [32]byte, verify func(record []byte) error) ([]byte, string, error)
	// List returns every anchored record verify accepts, and how many others were skipped.
	List(ctx context.Context, verify func(record []byte) error) (records [][]byte, invalid int, err error)
}

var _ Anchors = (*calimero.Anchors)(nil)

// anchoring keeps model manifests anchored in a Calimero context and checks anchors, caching the
// last known state of each model for listings.
type anchoring struct {
	policy  string  // require | prefer | off
	anchors Anchors // nil when anchoring is off

	mu    sync.Mutex
	state map[content.ModelID]string
}

// newAnchoring builds the anchoring service from config; with no URL or policy "off" it is off.
func (n *Node) newAnchoring() (*anchoring, error) {
	c := n.cfg.Calimero
	a := &anchoring{policy: c.Anchoring, state: map[content.ModelID]string{}}
	if c.URL == "" || c.Anchoring == "off" {
		a.policy = "off"
		return a, nil
	}
	cc := calimero.Config{URL: c.URL, ContextID: c.ContextID, ExecutorPublicKey: c.ExecutorKey}
	if c.CredentialsFile != "" {
		raw, err := os.ReadFile(c.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("calimero.credentials_file: %w", err)
		}
		user, pass, ok := strings.Cut(strings.TrimSpace(string(raw)), ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("calimero.credentials_file %s must hold one line \"username:password\"", c.CredentialsFile)
		}
		cc.Username, cc.Password = user, pass
	}
	a.anchors = calimero.NewAnchors(calimero.New(cc))
	return a, nil
}

func (a *anchoring) on() bool { return a.anchors != nil }

func (a *anchoring) remember(id content.ModelID, state string) {
	a.mu.Lock()
	a.state[id] = state
	a.mu.Unlock()
}

// known returns the last state seen for id, without asking Calimero.
func (a *anchoring) known(id content.ModelID) string {
	if !a.on() {
		return calimero.StateOff
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.state[id]; ok {
		return s
	}
	return calimero.StateMissing
}

// put anchors a signed manifest.
func (a *anchoring) put(ctx context.Context, signed []byte) error {
	if !a.on() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	id, err := a.anchors.Put(ctx, signed)
	if err == nil {
		a.remember(id, calimero.StateVerified)
	}
	return err
}

// check reads the anchor of id afresh and verifies it is exactly the manifest we hold.
func (a *anchoring) check(ctx context.Context, id content.ModelID, signed []byte) (string, error) {
	if !a.on() {
		return calimero.StateOff, nil
	}
	_, state, err := a.anchors.Get(ctx, id, func(record []byte) error {
		if string(record) != string(signed) {
			return errors.New("anchored manifest differs from the one announced")
		}
		_, _, err := content.Open(record)
		return err
	})
	if state != "" {
		a.remember(id, state)
	}
	return state, err
}

// waitVerified polls until id's anchor verifies (replicas may lag), failing at once on an invalid
// anchor and after wait on a missing one.
func (a *anchoring) waitVerified(ctx context.Context, id content.ModelID, signed []byte, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	backoff := 100 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		state, err := a.check(cctx, id, signed)
		cancel()
		switch {
		case state == calimero.StateVerified:
			return nil
		case state == calimero.StateInvalid:
			return fmt.Errorf("%w: model %s: %v", errAnchorInvalid, hex.EncodeToString(id[:]), err)
		case time.Now().After(deadline):
			if err != nil {
				return fmt.Errorf("%w: %v", errAnchorMissing, err)
			}
			return fmt.Errorf("%w: model %s has no anchor in Calimero after %v", errAnchorMissing, hex.EncodeToString(id[:]), wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

var (
	errAnchorInvalid = errors.New("anchor is invalid")
	errAnchorMissing = errors.New("anchor is missing")
)

// fillFromAnchors adds every validly anchored manifest to the catalog: a late joiner learns
// models even when no peer that knows them is online.
func (m *models) fillFromAnchors(ctx context.Context) {
	a := m.n.anchoring
	if !a.on() {
		return
	}
	for {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		records, invalid, err := a.anchors.List(lctx, func(r []byte) error { _, _, err := content.Open(r); return err })
		cancel()
		if err != nil {
			m.log.Debug("read anchors", "err", err)
		}
		// Anchors come in no particular order: a version whose parent comes later is admitted
		// on a further pass (m.add checks every lineage).
		for progress := true; progress && len(records) > 0; {
			progress = false
			var later [][]byte
			for _, r := range records {
				rec, _, err := m.add(r, "anchor")
				switch {
				case err == nil:
					a.remember(rec.ID, calimero.StateVerified)
					progress = true
				case errors.Is(err, errUnknownParent):
					later = append(later, r)
				}
			}
			records = later
		}
		if invalid > 0 {
			m.log.Warn("calimero context holds invalid anchors", "count", invalid)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Minute):
		}
	}
}
