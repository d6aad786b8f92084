package node

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

func TestPreferRanker(t *testing.T) {
	quic := ma.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1")
	tcp := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	for _, c := range []struct {
		prefer      string
		first, then ma.Multiaddr
	}{{"tcp", tcp, quic}, {"quic", quic, tcp}} {
		got := preferRanker(c.prefer)([]ma.Multiaddr{quic, tcp})
		if len(got) != 2 || !got[0].Addr.Equal(c.first) || got[0].Delay != 0 || !got[1].Addr.Equal(c.then) || got[1].Delay < fallbackDelay {
			t.Errorf("prefer %s: ranked %v, want %s at once and %s after %v", c.prefer, got, c.first, c.then, fallbackDelay)
		}
	}
	if got := preferRanker("tcp")([]ma.Multiaddr{quic}); len(got) != 1 || got[0].Delay != 0 {
		t.Errorf("a peer with only QUIC is dialled at once: %v", got)
	}
}
