package updates

import (
	"context"
	"testing"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The cost of refusing unpaid submissions (issue 12; BENCHMARKS.md "Refusing hostile traffic"):
// each iteration is one submission of a claimed 400 MiB update from a peer the coordinator
// refuses (Decide says no, as for an unknown round or a trainer without a grant), over a fresh
// kex session on mocknet. Reported: refusals per second and session bytes the coordinator read
// per refusal (after the handshake, whose messages are at most 2 × kex.MaxHandshakeMsg).
//
//	go test ./protocols/updates -run '^$' -bench Refus -benchtime 2000x
func benchCoordinator(b *testing.B) (*testCoordinator, func(b *testing.B, blind bool)) {
	a, c := pair(b)
	tc := serveCoordinator(b, c, 1<<30)
	tc.Decide = func(context.Context, peer.ID, *Statement) *Receipt {
		return &Receipt{Code: 1006, Message: "only trainers who paid for the model's lineage may submit updates"}
	}
	const claimed = 400 << 20
	chunk := make([]byte, BodyChunk)
	sum := make([]byte, 32)
	run := func(b *testing.B, blind bool) {
		ctx := context.Background()
		if !blind { // an honest client: header, then the refusal
			_, err := Submit(ctx, a, c.ID(), "r1", 10, sum, claimed, nil)
			if _, ok := err.(*Error); !ok {
				b.Fatalf("Submit = %v, want a refusal", err)
			}
			return
		}
		// A hostile client: the body is pushed right behind the header.
		hdr, err := Sign(a.Peerstore().PrivKey(a.ID()), &Statement{Round: "r1", Samples: 10, SHA256: sum, Size: claimed, Trainer: a.ID().String(), Coordinator: c.ID().String()})
		if err != nil {
			b.Fatal(err)
		}
		s, err := kex.Dial(ctx, a, c.ID(), PurposeSubmit)
		if err != nil {
			b.Fatal(err)
		}
		raw, _ := wire.Marshal(hdr)
		s.Send(ctx, raw)
		done := make(chan struct{})
		sctx, stop := context.WithCancel(ctx)
		go func() {
			defer close(done)
			for range claimed / BodyChunk {
				if s.Send(sctx, chunk) != nil {
					return
				}
			}
		}()
		if _, err := receive(ctx, s, c.ID()); err == nil {
			b.Fatal("a refused header got a go")
		}
		stop()
		s.Reset()
		<-done
	}
	return tc, run
}

func benchRefusals(b *testing.B, blind bool) {
	tc, run := benchCoordinator(b)
	for b.Loop() {
		run(b, blind)
	}
	count, read := tc.Refusals()
	b.ReportMetric(float64(count)/b.Elapsed().Seconds(), "refusals/s")
	b.ReportMetric(float64(read)/float64(count), "bytes-read/refusal")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkRefusal(b *testing.B)      { benchRefusals(b, false) }
func BenchmarkRefusalBlind(b *testing.B) { benchRefusals(b, true) }
