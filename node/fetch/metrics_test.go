package fetch

import (
	"testing"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/node/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A fetch over the chunk protocol moves the fetcher's bytes-in and chunks-fetched counters by
// the model's ciphertext, the seeder's bytes-out and chunks-served by the same, and observes one
// fetch duration (result ok).
func TestFetchMovesTransferMetrics(t *testing.T) {
	mn, err := mocknet.FullMeshConnected(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mn.Close() })
	pub, tr := newFixture(t, mn.Hosts()[0]), newFixture(t, mn.Hosts()[1])
	pubM, trM := metrics.New(metrics.Build{}), metrics.New(metrics.Build{})
	pub.svc.cfg.Metrics, tr.svc.cfg.Metrics = pubM, trM
	for _, f := range []*fixture{pub, tr} {
		if err := f.svc.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	tr.catalog.providers = []peer.ID{mn.Hosts()[0].ID()}
	rec, _ := pub.publish(t, randomModel(20*content.MinChunkSize+3), "m", false)
	tr.catalog.add(rec)
	job, err := tr.svc.Fetch(t.Context(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, tr, job); st.State != jobs.Done {
		t.Fatalf("fetch job = %+v, want done", st)
	}
	cipher := float64(layoutOf(rec.Manifest).CipherSize())
	chunks := float64(rec.Manifest.Chunks)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"fetcher bytes in", testutil.ToFloat64(trM.TransferInBytes), cipher},
		{"fetcher chunks fetched", testutil.ToFloat64(trM.ChunksFetched), chunks},
		{"seeder bytes out", testutil.ToFloat64(pubM.TransferOutBytes), cipher},
		{"seeder chunks served", testutil.ToFloat64(pubM.ChunksServed), chunks},
		{"fetcher bytes out", testutil.ToFloat64(trM.TransferOutBytes), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// The job is done once its function returned, and the duration is observed just before.
	if n := testutil.CollectAndCount(trM.FetchDuration); n != 2 {
		t.Errorf("fetch duration series = %d, want 2", n)
	}
	if got := metrics.SampleCount(trM.FetchDuration, "ok"); got != 1 {
		t.Errorf("fetch durations observed (ok) = %d, want 1", got)
	}
}
