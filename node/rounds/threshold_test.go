package rounds

import (
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/libp2p/go-libp2p/core/peer"
)

// publishThresholdRoot publishes raw as a 2-of-2 root naming this node and other, whose key this
// node does not hold (only its share, which the fake does not model).
func (n *fakeNode) publishThresholdRoot(t *testing.T, raw []byte, other peer.ID) *catalog.Record {
	t.Helper()
	m := contenttest.Manifest(versionFor("threshold", raw, n.self, other))
	m.Threshold = 2
	m.ShareCommitments = [][]byte{make([]byte, 32), make([]byte, 32)}
	signed, _, err := content.Sign(m, n.key)
	if err != nil {
		t.Fatal(err)
	}
	return n.catalog.addSigned(t, signed)
}

// A round on a threshold version: the coordinator is seen to run a round on the version (Runs)
// before it asks for the others' shares, holds the key only for the round, and wipes it when the
// round ends; a round whose shares cannot be collected is refused with the keys service's error
// and leaves no live round behind.
func TestRoundOnThresholdVersion(t *testing.T) {
	defer func(w time.Duration) { holdWait = w }(holdWait)
	holdWait = 300 * time.Millisecond // the refused Open retries for this long
	n := newNode(t, config.RoleCoordinator)
	other := contenttest.NewSigner(t).ID
	raw, err := fl.NewLogReg(4, 3).Encode()
	if err != nil {
		t.Fatal(err)
	}
	rec := n.publishThresholdRoot(t, raw, other)

	_, err = n.s.Open(t.Context(), OpenParams{ModelID: hex.EncodeToString(rec.ID[:]), MinUpdates: 1, Deadline: "1h"})
	var coded *apierr.Error
	if !errors.As(err, &coded) || coded.Code != apierr.Unavailable {
		t.Fatalf("Open without shares = %v, want the keys service's unavailable error", err)
	}
	if n.s.Runs(rec.ID, n.self) || len(n.s.OpenBases()) != 0 {
		t.Fatal("a refused round still counts as running")
	}

	var runsWhenAsked bool
	n.keys.onHold = func(r *catalog.Record) error {
		runsWhenAsked = n.s.Runs(r.ID, n.self)
		n.models.hold(r.ID, raw)
		return nil
	}
	// A short deadline ends the round without updates (it fails): its key must go with it.
	_, err = n.s.Open(t.Context(), OpenParams{ModelID: hex.EncodeToString(rec.ID[:]), MinUpdates: 1, Deadline: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if !runsWhenAsked {
		t.Error("the shares were asked for before the round counted as running (the others would refuse)")
	}
	if !n.models.Has(rec.ID) {
		t.Fatal("the key is not held during the round")
	}
	waitFor(t, 10*time.Second, func() error {
		if n.models.Has(rec.ID) {
			return errors.New("the held key outlived its round")
		}
		return nil
	})
	if n.models.released != 1 {
		t.Errorf("released %d held keys, want 1", n.models.released)
	}
}
