package content_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestSplitCheckCombine(t *testing.T) {
	k, _ := content.NewKey()
	salt := bytes.Repeat([]byte{7}, content.SaltSize)
	shares, commits, err := content.SplitKey(k, salt, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	again, commits2, _ := content.SplitKey(k, salt, 5, 3)
	for i := range shares {
		if !bytes.Equal(shares[i].Y, again[i].Y) || !bytes.Equal(commits[i], commits2[i]) {
			t.Fatalf("SplitKey is not reproducible from the key and salt: share %d differs", i)
		}
		if shares[i].X != byte(i+1) {
			t.Fatalf("share %d has x = %d, want %d", i, shares[i].X, i+1)
		}
	}
	otherSalt := bytes.Repeat([]byte{8}, content.SaltSize)
	if s2, _, _ := content.SplitKey(k, otherSalt, 5, 3); bytes.Equal(s2[0].Y, shares[0].Y) {
		t.Errorf("shares under another salt are the same: a share is not bound to its version")
	}
	m := &content.Manifest{Threshold: 3, ShareCommitments: commits, Salt: salt, KeyCommitment: commitment(k)}
	for i, s := range shares {
		if err := content.CheckShare(m, uint(i), s.Y); err != nil {
			t.Errorf("CheckShare(%d, its share) = %v", i, err)
		}
		if err := content.CheckShare(m, uint((i+1)%5), s.Y); !errors.Is(err, content.ErrShare) {
			t.Errorf("CheckShare(share %d at index %d) = %v, want ErrShare", i, (i+1)%5, err)
		}
	}
	if err := content.CheckShare(m, 5, shares[0].Y); !errors.Is(err, content.ErrShare) {
		t.Errorf("CheckShare(out of range) = %v, want ErrShare", err)
	}
	other := &content.Manifest{Threshold: 3, ShareCommitments: commits, Salt: otherSalt}
	if err := content.CheckShare(other, 0, shares[0].Y); !errors.Is(err, content.ErrShare) {
		t.Errorf("CheckShare under another version's salt = %v, want ErrShare", err)
	}
	// Every 3-subset rebuilds the key; two shares do not.
	for a := range 5 {
		for b := a + 1; b < 5; b++ {
			for c := b + 1; c < 5; c++ {
				got, err := content.CombineKey(m, []content.KeyShare{shares[a], shares[b], shares[c]})
				if err != nil || got != k {
					t.Fatalf("CombineKey(%d,%d,%d) = %x, %v; want the key", a, b, c, got[:4], err)
				}
			}
		}
	}
	if _, err := content.CombineKey(m, shares[:2]); err == nil {
		t.Errorf("CombineKey(2 of 3 needed) = nil error")
	}
	bad := append([]content.KeyShare(nil), shares[:3]...)
	bad[1] = content.KeyShare{X: bad[1].X, Y: bytes.Repeat([]byte{1}, content.KeySize)}
	if _, err := content.CombineKey(m, bad); !errors.Is(err, content.ErrKeyCommitment) {
		t.Errorf("CombineKey(a tampered share) = %v, want ErrKeyCommitment", err)
	}
	if _, _, err := content.SplitKey(k, salt, 3, 4); err == nil {
		t.Errorf("SplitKey(t > n) = nil error")
	}
	if _, _, err := content.SplitKey(k, salt, 3, 1); err == nil {
		t.Errorf("SplitKey(t = 1) = nil error")
	}
}

func commitment(k content.Key) []byte {
	c := k.Commitment()
	return c[:]
}

func TestThresholdManifest(t *testing.T) {
	pub := contenttest.NewSigner(t)
	coords := []peer.ID{contenttest.NewSigner(t).ID, contenttest.NewSigner(t).ID, contenttest.NewSigner(t).ID}
	k, _ := content.NewKey()
	signed, id := pub.Sign(t, contenttest.Version{Coords: coords, Key: k, Threshold: 2})
	m, _, err := content.Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	if !m.IsThreshold() || m.Threshold != 2 || len(m.ShareCommitments) != 3 {
		t.Fatalf("opened root: threshold %d, %d commitments; want 2 and 3", m.Threshold, len(m.ShareCommitments))
	}
	if got := m.ShareHolderIDs(); len(got) != 3 || got[2] != coords[2] {
		t.Errorf("ShareHolderIDs = %v, want the root's coordinators", got)
	}
	if i, ok := m.ShareIndex(coords[1]); !ok || i != 1 {
		t.Errorf("ShareIndex(coordinator 1) = %d, %v", i, ok)
	}
	// A child carries its holders and commitments.
	k2, _ := content.NewKey()
	child := pub.Signed(t, contenttest.Version{Parent: &id, Lineage: &id, Key: k2, Threshold: 2, Holders: coords[:2]})
	cm, _, err := content.Open(child)
	if err != nil || len(cm.ShareHolderIDs()) != 2 {
		t.Fatalf("child: %v, holders %v", err, cm)
	}
	// A whole-key lineage is unchanged.
	plain := pub.Signed(t, contenttest.Version{Coords: coords, Key: k})
	if pm, _, err := content.Open(plain); err != nil || pm.IsThreshold() || pm.Threshold != 0 {
		t.Errorf("whole-key root: %v, threshold %v", err, pm)
	}

	refused := []struct {
		name, want string
		edit       func(m *content.Manifest)
	}{
		{"threshold above the coordinators", "exceeds the 3 coordinators", func(m *content.Manifest) { m.Threshold = 4 }},
		{"missing commitment", "2 share commitments for 3", func(m *content.Manifest) { m.ShareCommitments = m.ShareCommitments[:2] }},
		{"short commitment", "must be 32 bytes", func(m *content.Manifest) { m.ShareCommitments[0] = []byte{1} }},
		{"commitments without a threshold", "need a threshold", func(m *content.Manifest) { m.Threshold = 0 }},
		{"holders on a root", "names no share holders", func(m *content.Manifest) { m.ShareHolders = [][]byte{[]byte(coords[0])} }},
		{"threshold without coordinators", "needs coordinators", func(m *content.Manifest) {
			m.Coordinators, m.ShareCommitments, m.Threshold = nil, nil, 1
		}},
	}
	for _, tt := range refused {
		m := contenttest.Manifest(contenttest.Version{Coords: coords, Key: k, Threshold: 2})
		tt.edit(m)
		_, _, err := content.Sign(m, pub.Priv)
		if !errors.Is(err, content.ErrManifest) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Sign = %v, want ErrManifest saying %q", tt.name, err, tt.want)
		}
	}
	cmChild := contenttest.Manifest(contenttest.Version{Parent: &id, Lineage: &id, Key: k2, Threshold: 2, Holders: coords})
	cmChild.ShareHolders[1] = cmChild.ShareHolders[0]
	if _, _, err := content.Sign(cmChild, pub.Priv); err == nil || !strings.Contains(err.Error(), "named twice") {
		t.Errorf("child with a holder named twice: Sign = %v", err)
	}
}
