package keys

import (
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/protocols/apierr"
	keyswire "github.com/califusion/califusion/protocols/keys"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestCoordinatorUpdate: the publisher adds a fourth coordinator and raises the threshold to 3;
// every coordinator (the new one, which had not heard of the lineage, too) applies the update,
// and the shares of a version published after it go to the new set; before the update the new
// coordinator refuses such a share, and an update not signed by the publisher is refused.
func TestCoordinatorUpdate(t *testing.T) {
	n := newThresholdNet(t, 1)
	newcomer := startCoordinator(t, n.hosts[7], n.l)
	set := []peer.ID{n.coords[0].id, n.coords[1].id, n.coords[2].id, newcomer.id}

	k, _ := content.NewKey()
	version, vid := n.pub.Sign(t, contenttest.Version{Parent: &n.r.ID, Lineage: &n.r.ID, Key: k, Threshold: 3, Holders: set})
	vman, _, _ := content.Open(version)
	shares, _, _ := content.SplitKey(k, vman.Salt, 4, 3)
	newcomer.catalog.put(n.r)
	if _, err := keyswire.Request(t.Context(), n.hosts[0], newcomer.id, keyswire.PurposeEscrow, &keyswire.Deposit{Manifest: version, Share: shares[3].Y, Index: 3}); codeOf(err) != apierr.Role || !strings.Contains(err.Error(), "not a coordinator of the model's lineage") {
		t.Errorf("share for a coordinator not yet added = %v, want a role refusal", err)
	}
	newcomer.catalog = newFakeCatalog() // forget the root: the update brings it
	newcomer.deps.Catalog = newcomer.catalog

	st := newStore(t)
	cat := newFakeCatalog()
	cat.put(n.r)
	pub := NewClient(Config{Self: n.pub.ID, Key: n.pub.Priv}, Deps{Store: st, Keys: newKeyringOn(t, st), Host: n.hosts[0], Catalog: cat, Ledger: newFakeLedgerSvc(n.l, 10)})
	done, err := pub.UpdateCoordinators(t.Context(), n.r, set, 3)
	if err != nil || done.Update.Seq != 1 || done.Accepted != 4 || len(done.Failed) != 0 {
		t.Fatalf("UpdateCoordinators = %+v, %v; want seq 1 accepted by all four", done, err)
	}
	for i, c := range append(n.coords, newcomer) {
		r, err := c.catalog.Get(n.r.ID)
		if err != nil {
			t.Fatalf("coordinator %d does not know the lineage: %v", i, err)
		}
		if ids, th := r.CoordinatorSet(); len(ids) != 4 || th != 3 {
			t.Errorf("coordinator %d: set %v, threshold %d; want the update's", i, ids, th)
		}
	}
	if ids, th := n.r.CoordinatorSet(); len(ids) != 4 || th != 3 {
		t.Errorf("publisher: set %v, threshold %d; want the update's", ids, th)
	}
	rec := recordOf(t, version)
	rec.Root = n.r
	rep := pub.EscrowKey(t.Context(), rec, k)
	if rep.Deposited != 4 || rep.Needed != 3 || rep.Err(vid) != nil {
		t.Errorf("escrow of a version after the update = %+v, want 4 of 4 holding shares, 3 needed", rep)
	}
	if idx, _, err := newcomer.keys.GetShare(vid); err != nil || idx != 3 {
		t.Errorf("the added coordinator's share: %d, %v", idx, err)
	}
	// Only the publisher signs updates.
	forged, _ := content.SignCoordinatorUpdate(&content.CoordinatorUpdate{Lineage: n.r.ID[:], Seq: 9, Coordinators: [][]byte{[]byte(n.hosts[4].ID())}, CreatedAt: time.Now().UnixMilli()}, n.signers[3].Priv)
	if _, err := keyswire.Request(t.Context(), n.hosts[4], n.coords[0].id, keyswire.PurposeCoordinators, &keyswire.Coordinators{Update: forged}); codeOf(err) != apierr.Integrity || !strings.Contains(err.Error(), "not signed by the lineage's publisher") {
		t.Errorf("forged update = %v, want an integrity refusal", err)
	}
	other, _ := n.client(t, 4)
	other.cfg.Key = n.signers[3].Priv
	if _, err := other.UpdateCoordinators(t.Context(), n.r, set, 2); apierr.CodeOf(err) != apierr.Role {
		t.Errorf("UpdateCoordinators by a non-publisher = %v, want a role refusal", err)
	}
}
