package chunks

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
)

// Source is what a server serves from.
type Source interface {
	// Leaves returns a model's concatenated leaf hashes, or ErrUnknownModel.
	Leaves(model [32]byte) ([]byte, error)
	// ReadChunk returns chunk i of a model (buf may be reused), or an error when it is not held.
	ReadChunk(model [32]byte, i uint64, buf []byte) ([]byte, error)
}

// Server answers chunks requests.
type Server struct {
	src Source
	log *slog.Logger
}

// Register installs the protocol handler on h.
func Register(h host.Host, src Source, log *slog.Logger) *Server {
	s := &Server{src: src, log: log}
	h.SetStreamHandler(ID, wire.Handler(wire.Limits{Service: ServiceName, Memory: MaxChunkFrame, Timeout: StreamTimeout}, log, s.serve))
	return s
}

func (s *Server) serve(st network.Stream) error {
	var req Request
	if err := wire.ReadFrame(st, MaxRequestSize, &req); err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if err := req.validate(); err != nil {
		return err
	}
	model := [32]byte(req.Model)
	if req.Leaves {
		return s.serveLeaves(st, model, req.From)
	}
	var buf []byte
	for _, i := range req.Indices {
		ct, err := s.src.ReadChunk(model, i, buf)
		if err != nil {
			err = wire.WriteFrame(st, &ChunkResponse{Index: i, Missing: true})
		} else {
			buf = ct
			err = writeChunk(st, i, ct)
		}
		if err != nil {
			return fmt.Errorf("write chunk %d: %w", i, err)
		}
	}
	return nil
}

func (s *Server) serveLeaves(st network.Stream, model [32]byte, from uint64) error {
	all, err := s.src.Leaves(model)
	if err != nil {
		if errors.Is(err, ErrUnknownModel) {
			return wire.WriteFrame(st, &LeavesResponse{Total: 0})
		}
		return err
	}
	total := uint64(len(all) / 32)
	if from > total {
		return fmt.Errorf("%w: leaves from %d of %d", ErrBadRequest, from, total)
	}
	end := min(total, from+MaxLeavesPerFrame)
	return wire.WriteFrame(st, &LeavesResponse{Hashes: all[from*32 : end*32], Total: total})
}
