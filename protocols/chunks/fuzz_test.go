package chunks

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/network"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// leafServer is a provider whose answers to leaf requests come from a script: for each request,
// one op byte picks an honest page, a lying page, a raw frame, or silence.
type leafServer struct {
	mu     sync.Mutex
	leaves []byte // the honest leaf list
	ops    []byte
}

func (s *leafServer) next() byte {
	if len(s.ops) == 0 {
		return 2
	}
	b := s.ops[0]
	s.ops = s.ops[1:]
	return b
}

func (s *leafServer) serve(st network.Stream) {
	defer st.Close()
	var req Request
	if err := wire.ReadFrame(st, MaxRequestSize, &req); err != nil {
		st.Reset()
		return
	}
	s.mu.Lock()
	op, arg := s.next(), s.next()
	total := uint64(len(s.leaves) / 32)
	from := min(req.From*32, uint64(len(s.leaves)))
	page := s.leaves[from:]
	if n := uint64(arg%8+1) * 32; uint64(len(page)) > n && op%5 != 0 {
		page = page[:n]
	}
	var raw []byte
	switch op % 5 {
	case 0, 1: // an honest page (all of it, or a few leaves)
	case 2: // a lying total
		total = total + uint64(arg) - 128
	case 3: // a page with a flipped bit, or cut to a length that is not a multiple of 32
		page = append([]byte(nil), page...)
		if len(page) > 0 {
			page[int(arg)%len(page)] ^= 1
			if arg%2 == 0 {
				page = page[:len(page)-1]
			}
		}
	case 4: // raw bytes behind a frame length
		n := int(arg)
		raw = binary.AppendUvarint(nil, uint64(n))
		for i := 0; i < n; i++ {
			raw = append(raw, s.next())
		}
	}
	s.mu.Unlock()
	if raw != nil {
		st.Write(raw)
		return
	}
	wire.WriteFrame(st, &LeavesResponse{Hashes: page, Total: total})
}

func honestLeaves(n int) ([]byte, []byte) {
	leaves := make([][32]byte, n)
	for i := range leaves {
		leaves[i] = sha256.Sum256(binary.AppendUvarint(nil, uint64(i)))
	}
	root := content.Root(leaves)
	return content.LeavesToBytes(leaves), root[:]
}

// FuzzFetchLeaves runs FetchLeaves against a provider answering from a script (lying totals,
// corrupted or cut pages, raw frames, silence) and a claimed leaf count that may be absurd: it
// must never panic or allocate from the claimed count, and it returns a leaf list only when it
// has the count's length and hashes to the root.
func FuzzFetchLeaves(f *testing.F) {
	mn, err := mocknet.FullMeshConnected(2)
	if err != nil {
		f.Fatal(err)
	}
	defer mn.Close()
	hs := mn.Hosts()
	srv := &leafServer{}
	hs[1].SetStreamHandler(ID, srv.serve)
	f.Add(uint16(20), uint64(0), []byte{0, 7, 1, 7, 1, 7})
	f.Add(uint16(20), uint64(0), []byte{2, 0})
	f.Add(uint16(3), uint64(0), []byte{3, 5, 3, 6})
	f.Add(uint16(3), uint64(0), []byte{4, 3, 0xa1, 0x01, 0x40})
	f.Add(uint16(0), uint64(0), []byte{0, 0})
	f.Add(uint16(1), uint64(1<<40), []byte{0, 0}) // a manifest claiming 2^40 chunks
	f.Fuzz(func(t *testing.T, n uint16, claim uint64, ops []byte) {
		leaves, root := honestLeaves(int(n % 300))
		srv.mu.Lock()
		srv.leaves, srv.ops = leaves, append([]byte(nil), ops...)
		srv.mu.Unlock()
		count := uint64(len(leaves) / 32)
		if claim != 0 {
			count = claim
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		got, err := FetchLeaves(ctx, hs[0], hs[1].ID(), [32]byte{1}, count, root)
		if err != nil {
			return
		}
		if uint64(len(got)) != count || content.CheckLeaves(got, count, root) != nil {
			t.Fatalf("FetchLeaves returned %d leaves that do not hash to the root (count %d)", len(got), count)
		}
	})
}
