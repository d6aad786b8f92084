package content

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func newPeer(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, id
}

func rootManifest(coords ...peer.ID) *Manifest {
	m := &Manifest{Name: "m", Size: 10000, ChunkSize: MinChunkSize, Chunks: 3, Root: make([]byte, 32), KeyCommitment: make([]byte, 32),
		Salt: make([]byte, SaltSize), Price: "5", Payee: Account{Owner: testPayee}, CreatedAt: 1}
	for _, c := range coords {
		m.Coordinators = append(m.Coordinators, []byte(c))
	}
	return m
}

// A root's coordinators survive signing and opening, and decide who the root authorises.
func TestCoordinatorsRoundTrip(t *testing.T) {
	priv, pub := newPeer(t)
	_, c1 := newPeer(t)
	_, c2 := newPeer(t)
	_, stranger := newPeer(t)
	sgn, id, err := Sign(rootManifest(c1, c2), priv)
	if err != nil {
		t.Fatalf("Sign(root naming 2 coordinators) = %v", err)
	}
	m, got, err := Open(sgn)
	if err != nil || got != id {
		t.Fatalf("Open = %v, id %x, want %x", err, got, id)
	}
	if ids := m.CoordinatorIDs(); len(ids) != 2 || ids[0] != c1 || ids[1] != c2 {
		t.Errorf("CoordinatorIDs() = %v, want [%s %s]", ids, c1, c2)
	}
	for _, tt := range []struct {
		p    peer.ID
		want bool
	}{{pub, true}, {c1, true}, {c2, true}, {stranger, false}} {
		if got := m.Authorises(tt.p); got != tt.want {
			t.Errorf("Authorises(%s) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if m.Names(pub) {
		t.Errorf("Names(publisher) = true, want false (the publisher is not in the list)")
	}
	if p, err := PublisherOf(sgn); err != nil || p != pub {
		t.Errorf("PublisherOf = %s, %v; want %s", p, err, pub)
	}
	// A root without coordinators encodes exactly as before the field existed: no key 16.
	plain, _, err := Sign(rootManifest(), priv)
	if err != nil {
		t.Fatal(err)
	}
	var sp signed
	if err := wire.Unmarshal(plain, &sp); err != nil {
		t.Fatal(err)
	}
	var fields map[int]any
	if err := wire.Unmarshal(sp.Body, &fields); err != nil {
		t.Fatal(err)
	}
	if _, ok := fields[16]; ok {
		t.Errorf("a manifest without coordinators carries field 16")
	}
}

func TestCoordinatorsValidate(t *testing.T) {
	priv, _ := newPeer(t)
	_, c := newPeer(t)
	many := make([]peer.ID, MaxCoordinators+1)
	for i := range many {
		_, many[i] = newPeer(t)
	}
	tests := []struct {
		name string
		m    *Manifest
	}{
		{"too many", rootManifest(many...)},
		{"named twice", rootManifest(c, c)},
		{"not a peer ID", func() *Manifest { m := rootManifest(); m.Coordinators = [][]byte{{0xff, 0x01}}; return m }()},
		{"empty", func() *Manifest { m := rootManifest(); m.Coordinators = [][]byte{{}}; return m }()},
		{"too long", func() *Manifest {
			m := rootManifest()
			m.Coordinators = [][]byte{append([]byte{0x00, 100}, make([]byte, 100)...)} // identity multihash of 100 bytes
			return m
		}()},
		{"on a child", func() *Manifest {
			m := rootManifest(c)
			m.Parent, m.Lineage = make([]byte, 32), make([]byte, 32)
			return m
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := Sign(tt.m, priv); !errors.Is(err, ErrManifest) {
				t.Errorf("Sign(%s) = %v, want ErrManifest", tt.name, err)
			}
		})
	}
	if _, _, err := Sign(rootManifest(many[:MaxCoordinators]...), priv); err != nil {
		t.Errorf("Sign(%d coordinators) = %v, want nil", MaxCoordinators, err)
	}
}

// Open refuses a body whose coordinators are not canonically encoded, and one whose coordinator
// list was altered after signing.
func TestCoordinatorsCanonicalAndSigned(t *testing.T) {
	priv, _ := newPeer(t)
	_, c := newPeer(t)
	_, evil := newPeer(t)
	signed, _, err := Sign(rootManifest(c), priv)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Body      []byte `cbor:"1,keyasint"`
		Signature []byte `cbor:"2,keyasint"`
	}
	if err := wire.Unmarshal(signed, &s); err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := wire.Unmarshal(s.Body, &m); err != nil {
		t.Fatal(err)
	}
	m.Coordinators = [][]byte{[]byte(evil)}
	body, _ := wire.Marshal(&m)
	forged, _ := wire.Marshal(struct {
		Body      []byte `cbor:"1,keyasint"`
		Signature []byte `cbor:"2,keyasint"`
	}{body, s.Signature})
	if _, _, err := Open(forged); !errors.Is(err, ErrSignature) {
		t.Errorf("Open(coordinators replaced after signing) = %v, want ErrSignature", err)
	}
	// The coordinator list as an indefinite-length array is not canonical, so never opens.
	i := bytes.Index(s.Body, []byte{0x10, 0x81, 0x58, byte(len(c))})
	if i < 0 {
		t.Fatalf("encoded body does not hold key 16 with a one-element array: %x", s.Body)
	}
	elem := s.Body[i+2 : i+4+len(c)]
	indef := append(append(append(append([]byte{}, s.Body[:i+1]...), 0x9f), elem...), 0xff)
	indef = append(indef, s.Body[i+4+len(c):]...)
	sig, _ := priv.Sign(append([]byte(signContext), indef...))
	resigned, _ := wire.Marshal(struct {
		Body      []byte `cbor:"1,keyasint"`
		Signature []byte `cbor:"2,keyasint"`
	}{indef, sig})
	if _, _, err := Open(resigned); !errors.Is(err, ErrManifest) {
		t.Errorf("Open(coordinators as an indefinite-length array) = %v, want ErrManifest", err)
	}
	if _, err := PublisherOf([]byte("garbage")); err == nil {
		t.Errorf("PublisherOf(garbage) = nil error")
	}
}
