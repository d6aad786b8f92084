package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// anchoredModel signs a lineage root and returns its catalog record.
func anchoredModel(t *testing.T) *record {
	t.Helper()
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	k, _ := content.NewKey()
	signed := manifestBy(t, priv, k)
	man, id, err := content.Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	return &record{ID: id, Manifest: man, Signed: signed}
}

// TestFakeAnchoringPolicyOnPay: under "require", model_pay refuses a model whose anchor is
// missing, invalid or unreadable, before anything is paid; under "prefer" it pays whatever the
// anchor's state.
func TestFakeAnchoringPolicyOnPay(t *testing.T) {
	states := []struct {
		name   string
		anchor func(a *fakeAnchors, r *record)
		ok     bool // pays under require
	}{
		{"verified", func(a *fakeAnchors, r *record) { a.overwrite(r.ID, r.Signed) }, true},
		{"missing", func(*fakeAnchors, *record) {}, false},
		{"overwritten by another member", func(a *fakeAnchors, r *record) { a.overwrite(r.ID, []byte("garbage")) }, false},
		{"another model's manifest under the ID", func(a *fakeAnchors, r *record) {
			other := anchoredModel(t)
			a.overwrite(other.ID, other.Signed)
			a.kv[r.ID] = a.kv[other.ID] // hashes to other.ID, not r.ID
		}, false},
		{"calimero unreachable", func(a *fakeAnchors, _ *record) { a.err = errors.New("connection refused") }, false},
	}
	for _, policy := range []string{"require", "prefer"} {
		for _, st := range states {
			t.Run(policy+"/"+st.name, func(t *testing.T) {
				p := newFakePayer(t, 1_000)
				r := anchoredModel(t)
				p.n.models.verified.Store(r.ID, r)
				a := newFakeAnchors()
				p.n.anchoring = &anchoring{policy: policy, anchors: a, state: map[content.ModelID]string{}}
				st.anchor(a, r)
				_, err := p.n.rpcModelPay(t.Context(), adminrpc.PayParams{ModelID: hex.EncodeToString(r.ID[:])})
				wantOK := st.ok || policy == "prefer"
				switch {
				case wantOK && err != nil:
					t.Errorf("model_pay = %v, want a payment", err)
				case !wantOK && adminrpc.CodeOf(err) != adminrpc.CodeIntegrity:
					t.Errorf("model_pay = %v, want code %d", err, adminrpc.CodeIntegrity)
				case !wantOK && p.l.blockCount() != 0:
					t.Errorf("model_pay refused but made %d transfers", p.l.blockCount())
				}
				if policy == "prefer" && a.gets != 0 {
					t.Errorf("model_pay under prefer read the anchor %d times, want none", a.gets)
				}
			})
		}
	}
}

// TestFakeAnchoringStates: put anchors a manifest and remembers it verified; check reads the
// anchor afresh and remembers what it saw; an unreadable Calimero leaves the last known state.
func TestFakeAnchoringStates(t *testing.T) {
	a := newFakeAnchors()
	an := &anchoring{policy: "require", anchors: a, state: map[content.ModelID]string{}}
	r := anchoredModel(t)
	if got := an.known(r.ID); got != calimero.StateMissing {
		t.Errorf("known(never seen) = %q, want %q", got, calimero.StateMissing)
	}
	if err := an.put(t.Context(), r.Signed); err != nil {
		t.Fatal(err)
	}
	if got := an.known(r.ID); got != calimero.StateVerified {
		t.Errorf("known(after put) = %q, want %q", got, calimero.StateVerified)
	}
	a.overwrite(r.ID, []byte("garbage"))
	if state, err := an.check(t.Context(), r.ID, r.Signed); state != calimero.StateInvalid || !errors.Is(err, calimero.ErrAnchorInvalid) {
		t.Errorf("check(overwritten) = %q, %v; want %q, ErrAnchorInvalid", state, err, calimero.StateInvalid)
	}
	a.err = errors.New("connection refused")
	if state, err := an.check(t.Context(), r.ID, r.Signed); state != "" || err == nil {
		t.Errorf("check(unreachable) = %q, %v; want no state and the error", state, err)
	}
	if got := an.known(r.ID); got != calimero.StateInvalid {
		t.Errorf("known(after an unreadable check) = %q, want the last seen %q", got, calimero.StateInvalid)
	}
	off := &anchoring{policy: "off", state: map[content.ModelID]string{}}
	if state, err := off.check(t.Context(), r.ID, r.Signed); state != calimero.StateOff || err != nil || off.known(r.ID) != calimero.StateOff {
		t.Errorf("check with anchoring off = %q, %v; want %q", state, err, calimero.StateOff)
	}
	if err := off.put(t.Context(), r.Signed); err != nil {
		t.Errorf("put with anchoring off = %v, want nil", err)
	}
}

// TestFakeWaitVerified: a fetch under "require" waits for the anchor (replicas may lag), fails at
// once on an invalid one and after the wait on a missing one.
func TestFakeWaitVerified(t *testing.T) {
	r := anchoredModel(t)
	newAn := func() (*anchoring, *fakeAnchors) {
		a := newFakeAnchors()
		return &anchoring{policy: "require", anchors: a, state: map[content.ModelID]string{}}, a
	}

	an, a := newAn()
	a.overwrite(r.ID, []byte("garbage"))
	if err := an.waitVerified(t.Context(), r.ID, r.Signed, time.Minute); !errors.Is(err, errAnchorInvalid) || a.gets != 1 {
		t.Errorf("waitVerified(invalid) = %v after %d reads, want errAnchorInvalid at once", err, a.gets)
	}

	an, _ = newAn()
	if err := an.waitVerified(t.Context(), r.ID, r.Signed, 150*time.Millisecond); !errors.Is(err, errAnchorMissing) {
		t.Errorf("waitVerified(missing) = %v, want errAnchorMissing", err)
	}

	// The anchor appears on the third read.
	an, _ = newAn()
	lagging := &lagAnchors{fakeAnchors: newFakeAnchors(), after: 2, record: r.Signed}
	an.anchors = lagging
	if err := an.waitVerified(t.Context(), r.ID, r.Signed, time.Minute); err != nil || lagging.gets != 3 {
		t.Errorf("waitVerified(lagging) = %v after %d reads, want success on the third", err, lagging.gets)
	}
}

// lagAnchors is a fakeAnchors whose record becomes visible after a number of reads, as on a
// replica that has not synced yet.
type lagAnchors struct {
	*fakeAnchors
	after  int
	record []byte
}

func (l *lagAnchors) Get(ctx context.Context, id [32]byte, verify func([]byte) error) ([]byte, string, error) {
	if l.gets == l.after {
		l.overwrite(id, l.record)
	}
	return l.fakeAnchors.Get(ctx, id, verify)
}
