package discovery

import (
	"crypto/rand"
	"testing"

	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The peer book gives back what it remembered, skipping what it cannot parse.
func TestPeerBookRemembers(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, pub, _ := crypto.GenerateEd25519Key(rand.Reader)
	id, _ := peer.IDFromPublicKey(pub)
	s := NewPeerBook(nil, st, nil)
	s.remember(id, []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")})
	if err := st.Put(store.PeerKey("not-a-peer-id"), &store.PeerRecord{Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}); err != nil {
		t.Fatal(err)
	}
	known, err := s.Known()
	if err != nil || len(known) != 1 || known[0].ID != id || len(known[0].Addrs) != 1 || known[0].Addrs[0].String() != "/ip4/127.0.0.1/tcp/4001" {
		t.Fatalf("Known() = %v, %v", known, err)
	}
}

func TestAddrInfosMergesAndRefuses(t *testing.T) {
	_, pub, _ := crypto.GenerateEd25519Key(rand.Reader)
	id, _ := peer.IDFromPublicKey(pub)
	got, err := AddrInfos([]string{"/ip4/127.0.0.1/tcp/1/p2p/" + id.String(), "/ip4/127.0.0.1/udp/1/quic-v1/p2p/" + id.String()})
	if err != nil || len(got) != 1 || len(got[0].Addrs) != 2 {
		t.Fatalf("AddrInfos = %v, %v; want one peer with two addresses", got, err)
	}
	if _, err := AddrInfos([]string{"/ip4/127.0.0.1/tcp/1"}); err == nil {
		t.Errorf("an address without /p2p/ was accepted")
	}
}
