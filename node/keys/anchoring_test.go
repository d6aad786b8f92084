package keys

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// anchoredModel signs a lineage root and returns its catalog record.
func anchoredModel(t *testing.T) *catalog.Record {
	t.Helper()
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	k, _ := content.NewKey()
	return recordOf(t, manifestBy(t, priv, k))
}

// TestFakeAnchoringPolicyOnPay: under "require", Pay refuses a model whose anchor is missing,
// invalid or unreadable, before anything is paid; under "prefer" it pays whatever the anchor's
// state. (What makes an anchor verified, invalid or missing is node/anchoring's Check, tested
// there; here the fake answers each state.)
func TestFakeAnchoringPolicyOnPay(t *testing.T) {
	states := []struct {
		name   string
		anchor func(a *fakeAnchoring, r *catalog.Record)
		ok     bool // pays under require
	}{
		{"verified", func(a *fakeAnchoring, r *catalog.Record) { a.state[r.ID] = "verified" }, true},
		{"missing", func(*fakeAnchoring, *catalog.Record) {}, false},
		{"overwritten by another member", func(a *fakeAnchoring, r *catalog.Record) { a.state[r.ID] = "invalid" }, false},
		{"calimero unreachable", func(a *fakeAnchoring, _ *catalog.Record) { a.err = errors.New("connection refused") }, false},
	}
	for _, policy := range []string{"require", "prefer"} {
		for _, st := range states {
			t.Run(policy+"/"+st.name, func(t *testing.T) {
				p := newFakePayer(t, 1_000)
				r := anchoredModel(t)
				p.an.required = policy == "require"
				st.anchor(p.an, r)
				_, err := p.c.Pay(t.Context(), r, false)
				wantOK := st.ok || policy == "prefer"
				switch {
				case wantOK && err != nil:
					t.Errorf("Pay = %v, want a payment", err)
				case !wantOK && apierr.CodeOf(err) != apierr.Integrity:
					t.Errorf("Pay = %v, want code %d", err, apierr.Integrity)
				case !wantOK && p.l.BlockCount() != 0:
					t.Errorf("Pay refused but made %d transfers", p.l.BlockCount())
				}
				if policy == "prefer" && p.an.checks != 0 {
					t.Errorf("Pay under prefer read the anchor %d times, want none", p.an.checks)
				}
			})
		}
	}
}
