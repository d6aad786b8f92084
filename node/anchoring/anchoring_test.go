package anchoring_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/anchoring"
	"github.com/califusion/califusion/node/anchoring/anchoringtest"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// model is a signed lineage root.
type model struct {
	ID     content.ModelID
	Signed []byte
}

// anchoredModel signs a lineage root.
func anchoredModel(t *testing.T) model {
	t.Helper()
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	k, _ := content.NewKey()
	kc := k.Commitment()
	m := &content.Manifest{Name: "m", Size: 1, ChunkSize: content.MinChunkSize, Chunks: 1, Root: make([]byte, 32),
		KeyCommitment: kc[:], Salt: make([]byte, content.SaltSize), Price: "1", Payee: content.Account{Owner: "aaaaa-aa"}, CreatedAt: time.Now().UnixMilli()}
	signed, id, err := content.Sign(m, priv)
	if err != nil {
		t.Fatal(err)
	}
	return model{ID: id, Signed: signed}
}

// TestFakeAnchoringStates: put anchors a manifest and remembers it verified; check reads the
// anchor afresh and remembers what it saw; an unreadable Calimero leaves the last known state.
func TestFakeAnchoringStates(t *testing.T) {
	a := anchoringtest.NewFake()
	an := anchoring.NewWith("require", a, nil)
	r := anchoredModel(t)
	if got := an.Known(r.ID); got != calimero.StateMissing {
		t.Errorf("Known(never seen) = %q, want %q", got, calimero.StateMissing)
	}
	if err := an.Put(t.Context(), r.Signed); err != nil {
		t.Fatal(err)
	}
	if got := an.Known(r.ID); got != calimero.StateVerified {
		t.Errorf("Known(after put) = %q, want %q", got, calimero.StateVerified)
	}
	a.Overwrite(r.ID, []byte("garbage"))
	if state, err := an.Check(t.Context(), r.ID, r.Signed); state != calimero.StateInvalid || !errors.Is(err, calimero.ErrAnchorInvalid) {
		t.Errorf("Check(overwritten) = %q, %v; want %q, ErrAnchorInvalid", state, err, calimero.StateInvalid)
	}
	a.SetErr(errors.New("connection refused"))
	if state, err := an.Check(t.Context(), r.ID, r.Signed); state != "" || err == nil {
		t.Errorf("Check(unreachable) = %q, %v; want no state and the error", state, err)
	}
	if got := an.Known(r.ID); got != calimero.StateInvalid {
		t.Errorf("Known(after an unreadable check) = %q, want the last seen %q", got, calimero.StateInvalid)
	}
	off := anchoring.NewWith("off", nil, nil)
	if state, err := off.Check(t.Context(), r.ID, r.Signed); state != calimero.StateOff || err != nil || off.Known(r.ID) != calimero.StateOff {
		t.Errorf("Check with anchoring off = %q, %v; want %q", state, err, calimero.StateOff)
	}
	if err := off.Put(t.Context(), r.Signed); err != nil {
		t.Errorf("Put with anchoring off = %v, want nil", err)
	}
}

// TestFakeWaitVerified: a fetch under "require" waits for the anchor (replicas may lag), fails at
// once on an invalid one and after the wait on a missing one.
func TestFakeWaitVerified(t *testing.T) {
	r := anchoredModel(t)

	a := anchoringtest.NewFake()
	an := anchoring.NewWith("require", a, nil)
	a.Overwrite(r.ID, []byte("garbage"))
	if err := an.WaitVerified(t.Context(), r.ID, r.Signed, time.Minute); !errors.Is(err, anchoring.ErrInvalid) || a.Gets() != 1 {
		t.Errorf("WaitVerified(invalid) = %v after %d reads, want ErrInvalid at once", err, a.Gets())
	}

	an = anchoring.NewWith("require", anchoringtest.NewFake(), nil)
	if err := an.WaitVerified(t.Context(), r.ID, r.Signed, 150*time.Millisecond); !errors.Is(err, anchoring.ErrMissing) {
		t.Errorf("WaitVerified(missing) = %v, want ErrMissing", err)
	}

	// The anchor appears on the third read.
	lagging := &lagAnchors{Fake: anchoringtest.NewFake(), after: 2, record: r.Signed}
	an = anchoring.NewWith("require", lagging, nil)
	if err := an.WaitVerified(t.Context(), r.ID, r.Signed, time.Minute); err != nil || lagging.Gets() != 3 {
		t.Errorf("WaitVerified(lagging) = %v after %d reads, want success on the third", err, lagging.Gets())
	}
}

// lagAnchors is a Fake whose record becomes visible after a number of reads, as on a replica
// that has not synced yet.
type lagAnchors struct {
	*anchoringtest.Fake
	after  int
	record []byte
}

func (l *lagAnchors) Get(ctx context.Context, id [32]byte, verify func([]byte) error) ([]byte, string, error) {
	if l.Gets() == l.after {
		l.Overwrite(id, l.record)
	}
	return l.Fake.Get(ctx, id, verify)
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		policy       string
		a            anchoring.Anchors
		want         string
		required, on bool
	}{
		{"require", anchoringtest.NewFake(), "require", true, true},
		{"prefer", anchoringtest.NewFake(), "prefer", false, true},
		{"require", nil, "off", false, false},
	}
	for _, tt := range tests {
		s := anchoring.NewWith(tt.policy, tt.a, nil)
		if s.Policy() != tt.want || s.Required() != tt.required || s.On() != tt.on {
			t.Errorf("NewWith(%q, %v): Policy, Required, On = %q, %v, %v; want %q, %v, %v", tt.policy, tt.a, s.Policy(), s.Required(), s.On(), tt.want, tt.required, tt.on)
		}
	}
	cfg := config.Default().Calimero
	cfg.URL = ""
	if s, err := anchoring.New(cfg, nil); err != nil || s.On() || s.Policy() != "off" {
		t.Errorf("New(no URL) = %v; want anchoring off", err)
	}
}

// TestCommit: a commitment is signed by the node's key and anchored under its hash; with
// anchoring off or Calimero unreachable there is no key.
func TestCommit(t *testing.T) {
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	a := anchoringtest.NewFake()
	s := anchoring.NewWith("prefer", a, priv)
	c := &calimero.Commitment{Kind: calimero.KindUpdate, Round: "r1", Model: make([]byte, 32), Hashes: [][]byte{make([]byte, 32)}, Samples: 3}
	key := s.Commit(t.Context(), c)
	if key == "" || c.CreatedAt == 0 {
		t.Fatalf("Commit = %q (created %d), want a key and a timestamp", key, c.CreatedAt)
	}
	records, invalid, err := s.List(t.Context(), func([]byte) error { return nil })
	if err != nil || invalid != 0 || len(records) != 1 || calimero.AnchorKey(sha256.Sum256(records[0])) != key {
		t.Errorf("List after Commit = %d records, %d invalid, %v; want the commitment under %s", len(records), invalid, err, key)
	}
	a.SetErr(errors.New("connection refused"))
	if key := s.Commit(t.Context(), c); key != "" {
		t.Errorf("Commit(unreachable) = %q, want \"\"", key)
	}
	if key := anchoring.NewWith("off", nil, priv).Commit(t.Context(), c); key != "" {
		t.Errorf("Commit(off) = %q, want \"\"", key)
	}
}
