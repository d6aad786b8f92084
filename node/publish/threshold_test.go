package publish

import (
	"bytes"
	"strings"
	"testing"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A threshold root commits to one share per coordinator; the publisher keeps the whole key.
func TestPublishThreshold(t *testing.T) {
	s, f, _ := newPublisher(t, false)
	coords := []peer.ID{contenttest.NewSigner(t).ID, contenttest.NewSigner(t).ID, contenttest.NewSigner(t).ID}
	rec, err := s.Publish(t.Context(), Params{Path: writeModel(t, 100), Coordinators: coords, Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	m := rec.Manifest
	if m.Threshold != 2 || len(m.ShareCommitments) != 3 {
		t.Fatalf("manifest: threshold %d, %d commitments; want 2 and 3", m.Threshold, len(m.ShareCommitments))
	}
	k, ok := f.keys[rec.ID]
	if !ok {
		t.Fatalf("the publisher did not keep the key of its threshold model")
	}
	shares, commits, _ := content.SplitKey(k, m.Salt, 3, 2)
	for i := range commits {
		if !bytes.Equal(commits[i], m.ShareCommitments[i]) || content.CheckShare(m, uint(i), shares[i].Y) != nil {
			t.Errorf("share commitment %d does not commit to the kept key's share", i)
		}
	}
	if _, _, err := content.Open(rec.Signed); err != nil {
		t.Errorf("signed threshold manifest does not open: %v", err)
	}
}

func TestPublishThresholdRefusals(t *testing.T) {
	s, f, _ := newPublisher(t, true)
	two := []peer.ID{contenttest.NewSigner(t).ID, contenttest.NewSigner(t).ID}
	_, err := s.Publish(t.Context(), Params{Path: writeModel(t, 100), Coordinators: two, Threshold: 3})
	if ae, ok := err.(*apierr.Error); !ok || ae.Code != apierr.InvalidParams || !strings.Contains(ae.Message, "needs at least 3 coordinators, 2 are named") {
		t.Errorf("threshold above the coordinators: %v, want invalid params", err)
	}
	// Default coordinators (this node only) cannot carry a threshold of 2.
	if _, err := s.Publish(t.Context(), Params{Path: writeModel(t, 100), Threshold: 2}); err == nil {
		t.Errorf("threshold 2 with the default single coordinator = nil error")
	}
	// Too few deposits: the model is published, the error says so.
	f.escrowShort = &apierr.Error{Code: apierr.Unavailable, Message: "only 1 of 2"}
	rec, err := s.Publish(t.Context(), Params{Path: writeModel(t, 100), Coordinators: two, Threshold: 2})
	if err == nil || rec == nil || !f.stored[rec.ID] || len(f.announced) == 0 {
		t.Errorf("escrow shortfall: rec %v, err %v; want the published record and the error", rec, err)
	}
}

// An aggregating coordinator's version of a threshold lineage is split across the lineage's
// coordinators; it stores no whole key and holds it in memory only.
func TestPublishVersionThresholdCoordinator(t *testing.T) {
	s, f, self := newPublisher(t, true)
	pub := contenttest.NewSigner(t)
	other := contenttest.NewSigner(t).ID
	k, _ := content.NewKey()
	signed, id := pub.Sign(t, contenttest.Version{Coords: []peer.ID{other, self}, Key: k, Threshold: 2})
	man, _, _ := content.Open(signed)
	root := &catalog.Record{ID: id, Manifest: man, Signed: signed}
	root.Root = root
	f.published[id] = root
	rec, err := s.PublishVersion(t.Context(), writeModel(t, 100), "agg", "", id)
	if err != nil {
		t.Fatal(err)
	}
	m := rec.Manifest
	if m.Threshold != 2 || len(m.ShareHolders) != 2 || peer.ID(m.ShareHolders[1]) != self {
		t.Fatalf("version: threshold %d, holders %v; want 2 and the lineage's coordinators", m.Threshold, m.ShareHolderIDs())
	}
	if _, stored := f.keys[rec.ID]; stored {
		t.Errorf("the coordinator stored the whole key of a threshold version")
	}
	held, ok := f.held[rec.ID]
	if !ok || held.CheckCommitment(m.KeyCommitment) != nil {
		t.Errorf("the coordinator does not hold the version's key in memory")
	}
}
