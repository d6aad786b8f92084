package node

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/protocols/chunks"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

// corrupt serves another node's chunks with one byte flipped.
type corrupt struct {
	of     *models
	served atomic.Int64
}

func (c *corrupt) Leaves(id [32]byte) ([]byte, error) { return c.of.Leaves(id) }

func (c *corrupt) ReadChunk(id [32]byte, i uint64, buf []byte) ([]byte, error) {
	ct, err := c.of.ReadChunk(id, i, buf)
	if err != nil {
		return nil, err
	}
	c.served.Add(1)
	ct = bytes.Clone(ct)
	ct[0] ^= 1
	return ct, nil
}

// TestCorruptSeederStaysPenalised: a provider that served bad chunks is penalised in the store
// and left out of the next fetch, of another model.
func TestCorruptSeederStaysPenalised(t *testing.T) {
	pub, tr := startNode(t, "publisher"), startNode(t, "trainer")
	if err := tr.host.Connect(t.Context(), peer.AddrInfo{ID: pub.host.ID(), Addrs: pub.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	liarHost, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { liarHost.Close() })
	liar := &corrupt{of: pub.models}
	chunks.NewServer(liarHost, liar, chunks.ServerConfig{}, slog.New(slog.DiscardHandler))
	if err := tr.host.Connect(t.Context(), peer.AddrInfo{ID: liarHost.ID(), Addrs: liarHost.Addrs()}); err != nil {
		t.Fatal(err)
	}

	fetchVia := func(name string) {
		t.Helper()
		plain := make([]byte, 32*content.MinChunkSize)
		rand.Read(plain)
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, plain, 0o600); err != nil {
			t.Fatal(err)
		}
		rec, err := pub.models.publish(t.Context(), PublishParams{Path: path, Name: name, Price: "1", ChunkSize: content.MinChunkSize})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := tr.models.get(rec.ID); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never reached the trainer's catalog", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The liar claims the model as well.
		tr.models.mu.Lock()
		if tr.models.announced[rec.ID] == nil {
			tr.models.announced[rec.ID] = map[peer.ID]bool{}
		}
		tr.models.announced[rec.ID][liarHost.ID()] = true
		tr.models.mu.Unlock()
		got, _ := tr.models.get(rec.ID)
		if err := tr.models.fetch(t.Context(), got, func(jobs.Progress) {}); err != nil {
			t.Fatalf("fetch %s = %v", name, err)
		}
	}

	fetchVia("first")
	if liar.served.Load() == 0 {
		t.Fatal("the first fetch asked the corrupt seeder for nothing: the test proves nothing")
	}
	pen, active, err := tr.store.PenaltyOf(liarHost.ID().String(), time.Now())
	if err != nil || !active || pen.Offences != 1 {
		t.Fatalf("penalty of the corrupt seeder = %+v, active %v, %v; want one active offence", pen, active, err)
	}
	if clean, penalised := splitPenalised(tr.store, []peer.ID{liarHost.ID(), pub.host.ID()}, time.Now()); len(clean) != 1 || clean[0] != pub.host.ID() || len(penalised) != 1 {
		t.Errorf("splitPenalised = %v, %v; want the publisher clean and the liar penalised", clean, penalised)
	}

	before := liar.served.Load()
	fetchVia("second")
	if n := liar.served.Load() - before; n != 0 {
		t.Errorf("the next fetch asked the penalised seeder for %d chunks, want none", n)
	}
	// With nobody else to ask, a penalised provider is still tried (every chunk is verified).
	if got := tr.models.rankProviders(content.ModelID{}, []peer.ID{liarHost.ID()}); len(got) != 1 {
		t.Errorf("rankProviders(only the penalised) = %v, want it kept as a last resort", got)
	}
}
