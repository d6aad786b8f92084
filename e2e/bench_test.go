package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/califusion/califusion/e2e/harness"
)

// BenchmarkStartToRPC measures `califusiond run` until it serves node_info.
//
//	go test ./e2e -run '^$' -bench StartToRPC
func BenchmarkStartToRPC(b *testing.B) {
	h := harness.New(bin, b.TempDir())
	b.Cleanup(func() { h.StopAll() })
	n, err := h.Init(context.Background(), "solo", nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := n.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := n.Stop(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkDiscovery10 measures how long 10 daemons, each given only the previous one as
// bootstrap peer, take until every node is connected to and has heard every other; it also
// reports each daemon's RSS once the network has settled.
//
//	go test ./e2e -run '^$' -bench Discovery10 -benchtime 3x
func BenchmarkDiscovery10(b *testing.B) {
	const count = 10
	var maxRSS int64
	for b.Loop() {
		b.StopTimer()
		h := harness.New(bin, b.TempDir())
		nodes := make([]*harness.Node, count)
		for i := range nodes {
			n, err := h.Init(context.Background(), fmt.Sprintf("n%d", i), nil)
			if err != nil {
				b.Fatal(err)
			}
			nodes[i] = n
		}
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if err := nodes[0].Start(ctx); err != nil {
			b.Fatal(err)
		}
		for i := 1; i < count; i++ {
			if err := nodes[i].Start(ctx, "--bootstrap", nodes[i-1].P2PAddr()); err != nil {
				b.Fatal(err)
			}
		}
		err := harness.WaitFor(ctx, func() error {
			for _, n := range nodes {
				peers, err := n.Client().NodePeers(ctx)
				if err != nil {
					return err
				}
				dir, err := n.Client().NodeDirectory(ctx)
				if err != nil {
					return err
				}
				if len(peers) < count-1 || len(dir) < count-1 {
					return fmt.Errorf("%s: %d peers, %d presences", n.Name, len(peers), len(dir))
				}
			}
			return nil
		})
		cancel()
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range nodes {
			if r, err := n.RSS(); err == nil && r > maxRSS {
				maxRSS = r
			}
		}
		h.StopAll()
		b.StartTimer()
	}
	b.ReportMetric(float64(maxRSS)/(1<<20), "max-RSS-MiB")
}
