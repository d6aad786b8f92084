package e2e

import (
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/chunks"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// hoardChunkStreams keeps n chunk streams from a to seeder open until the test ends: each asks
// for a full window of chunks and never reads a byte of the answer; a stream the seeder resets
// or refuses is opened again. It returns a counter of the streams opened.
func (a *attacker) hoardChunkStreams(seeder peer.ID, model [32]byte, chunkCount uint64, n int) *atomic.Int64 {
	a.t.Helper()
	ctx := a.t.Context()
	idx := make([]uint64, chunks.MaxWindow)
	for i := range idx {
		idx[i] = uint64(i) % chunkCount
	}
	var opened atomic.Int64
	open := func() network.Stream {
		st, err := a.h.NewStream(ctx, seeder, chunks.ID)
		if err != nil {
			return nil
		}
		if err := wire.WriteFrame(st, &chunks.Request{Model: model[:], Indices: idx}); err != nil {
			st.Reset()
			return nil
		}
		opened.Add(1)
		return st
	}
	// The first streams go out before this returns, so they are in place before anyone else asks.
	first := make([]network.Stream, n)
	for i := range first {
		first[i] = open()
	}
	for _, st := range first {
		go func() {
			for ctx.Err() == nil {
				if st == nil {
					st = open()
				}
				// One probe byte now and then (the server never reads them) notices a reset.
				for st != nil && ctx.Err() == nil {
					if _, err := st.Write([]byte{0}); err != nil {
						st.Reset()
						st = nil
					}
					select {
					case <-ctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
			if st != nil {
				st.Reset()
			}
		}()
	}
	return &opened
}

// TestChunkHoardersDoNotStarveAFetch (issue 12, attack 5): ten peers each keep eight chunk streams
// open to the only seeder of a model, asking for 64 chunks a stream and never reading; an honest
// trainer fetches the model from that seeder all the same.
func TestChunkHoardersDoNotStarveAFetch(t *testing.T) { hoardAttack(t, 10, 8) }

// TestChunkSybilsDoNotStarveAFetch: forty peers, more than the seeder serves streams at once (30
// at the default 256 MiB), each keep one never-read chunk stream open; no peer holds more than
// another, and the honest trainer's fetch still completes.
func TestChunkSybilsDoNotStarveAFetch(t *testing.T) { hoardAttack(t, 40, 1) }

// hoardAttack runs attackers peers keeping streams chunk streams each at a seeder while a
// trainer fetches a 32 MiB model from it.
func hoardAttack(t *testing.T, attackers, streams int) {
	c := newCluster(t)
	seeder := c.NewNodes("seed", 1, "publisher")[0]
	trainer := c.NewNodes("t", 1, "trainer")[0]
	c.start(seeder)
	c.start(trainer, "--bootstrap", seeder.P2PAddr())
	path, _ := writeRandom(t, 32<<20)
	res, err := seeder.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "hoarded", Price: "1000"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error {
		_, err := trainer.Client().ModelGet(t.Context(), res.ModelID)
		return err
	})
	id := modelID(t, res.ModelID)

	var opened []*atomic.Int64
	for range attackers {
		a := newAttacker(t, seeder)
		opened = append(opened, a.hoardChunkStreams(a.peerOf(seeder), id, res.Chunks, streams))
	}
	start := time.Now()
	job, err := trainer.Client().ModelFetch(t.Context(), res.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, func() error {
		st, err := trainer.Client().JobStatus(t.Context(), job.JobID)
		if err != nil {
			return err
		}
		switch st.State {
		case "done":
			return nil
		case "failed":
			t.Fatalf("fetch while %d peers hoard %d chunk streams each failed: %s", attackers, streams, st.Error)
		}
		return fmt.Errorf("fetch is %s (%d/%d bytes)", st.State, st.BytesDone, st.BytesTotal)
	})
	var total int64
	for _, o := range opened {
		total += o.Load()
	}
	t.Logf("fetch done in %v under attack; the attackers opened %d chunk streams in all", time.Since(start).Round(time.Millisecond), total)
	m, err := trainer.Client().ModelGet(t.Context(), res.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	if m.LocalChunks != m.Chunks {
		t.Errorf("trainer holds %d of %d chunks after the fetch, want all", m.LocalChunks, m.Chunks)
	}
}

// modelID parses a hex model ID.
func modelID(t *testing.T, s string) [32]byte {
	t.Helper()
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != 32 {
		t.Fatalf("model ID %q is not 32 bytes of hex: %v", s, err)
	}
	return [32]byte(raw)
}
