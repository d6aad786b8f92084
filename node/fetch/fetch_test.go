package fetch

import (
	"bytes"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/protocols/chunks"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// corrupt serves another node's chunks with one byte flipped.
type corrupt struct {
	of     *Service
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
	mn, err := mocknet.FullMeshConnected(3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	hosts := mn.Hosts()
	pub, tr, liarHost := newFixture(t, hosts[0]), newFixture(t, hosts[1]), hosts[2]
	if err := pub.svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	liar := &corrupt{of: pub.svc}
	chunks.NewServer(liarHost, liar, chunks.ServerConfig{}, slog.New(slog.DiscardHandler))
	// The liar claims every model as well.
	tr.catalog.providers = []peer.ID{liarHost.ID(), hosts[0].ID()}

	fetchVia := func(name string) {
		t.Helper()
		plain := randomModel(32 * content.MinChunkSize)
		rec, key := pub.publish(t, plain, name, true)
		got := &catalog.Record{ID: rec.ID, Manifest: rec.Manifest, Signed: rec.Signed, Source: "gossip"}
		got.Root = got
		tr.catalog.add(got)
		tr.keys.put(rec.ID, key)
		if err := tr.svc.fetch(t.Context(), got, func(jobs.Progress) {}); err != nil {
			t.Fatalf("fetch %s = %v", name, err)
		}
		if back, err := tr.svc.Plaintext(rec.ID); err != nil || !bytes.Equal(back, plain) {
			t.Fatalf("Plaintext of the fetched %s = %d bytes, %v; want the published plaintext", name, len(back), err)
		}
		if n := len(tr.catalog.provided); n == 0 || tr.catalog.provided[n-1] != rec.ID {
			t.Errorf("provided after fetching %s = %x, want it last (now a seeder)", name, tr.catalog.provided)
		}
	}

	fetchVia("first")
	if liar.served.Load() == 0 {
		t.Fatal("the first fetch asked the corrupt seeder for nothing: the test proves nothing")
	}
	pen, active, err := tr.st.PenaltyOf(liarHost.ID().String(), time.Now())
	if err != nil || !active || pen.Offences != 1 {
		t.Fatalf("penalty of the corrupt seeder = %+v, active %v, %v; want one active offence", pen, active, err)
	}
	if got := ranked(t, tr); len(got) != 1 || got[0] != hosts[0].ID() {
		t.Errorf("rankedProviders = %v, want the publisher only, the penalised liar left out", got)
	}

	before := liar.served.Load()
	fetchVia("second")
	if n := liar.served.Load() - before; n != 0 {
		t.Errorf("the next fetch asked the penalised seeder for %d chunks, want none", n)
	}
	// With nobody else to ask, a penalised provider is still tried (every chunk is verified).
	tr.catalog.providers = []peer.ID{liarHost.ID()}
	if got := ranked(t, tr); len(got) != 1 {
		t.Errorf("rankedProviders(only the penalised) = %v, want it kept as a last resort", got)
	}
}

// ranked is everything rankedProviders sends, until it closes.
func ranked(t *testing.T, f *fixture) []peer.ID {
	var got []peer.ID
	for p := range f.svc.rankedProviders(t.Context(), content.ModelID{}) {
		got = append(got, p)
	}
	return got
}

// TestFetchJobFromProvider: Fetch runs the whole pipeline as a job (providers, leaves, chunks,
// chunk store, provide) and reports every durable byte; a second Fetch of the complete model is
// done at once.
func TestFetchJobFromProvider(t *testing.T) {
	mn, err := mocknet.FullMeshConnected(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	pub, tr := newFixture(t, mn.Hosts()[0]), newFixture(t, mn.Hosts()[1])
	if err := pub.svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := tr.svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	tr.catalog.providers = []peer.ID{mn.Hosts()[0].ID()}
	rec, _ := pub.publish(t, randomModel(20*content.MinChunkSize+3), "m", false)
	tr.catalog.add(rec)
	job, err := tr.svc.Fetch(t.Context(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, tr, job)
	if total := layoutOf(rec.Manifest).CipherSize(); st.State != jobs.Done || st.BytesDone != total || st.BytesTotal != total {
		t.Fatalf("fetch job = %+v, want done with %d of %d bytes", st, total, total)
	}
	if !tr.svc.Complete(rec) || tr.svc.LocalChunks(rec) != rec.Manifest.Chunks {
		t.Errorf("after the fetch: Complete %v, LocalChunks %d; want complete, %d", tr.svc.Complete(rec), tr.svc.LocalChunks(rec), rec.Manifest.Chunks)
	}
	again, err := tr.svc.Fetch(t.Context(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, tr, again); st.State != jobs.Done {
		t.Errorf("second fetch = %+v, want done", st)
	}
}
