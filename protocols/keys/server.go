package keys

import (
	"context"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Handlers are a coordinator's answers to the keys messages, each given the authenticated
// sender; a nil one leaves its purpose unserved.
type Handlers struct {
	Escrow func(ctx context.Context, from peer.ID, d *Deposit) *Result
	Unlock func(ctx context.Context, from peer.ID, u *Unlock) *Result
	Probe  func(ctx context.Context, from peer.ID, p *Probe) *Result
	// RoundShare and Coordinators serve PurposeRoundShare and PurposeCoordinators.
	RoundShare   func(ctx context.Context, from peer.ID, r *RoundShare) *Result
	Coordinators func(ctx context.Context, from peer.ID, c *Coordinators) *Result
}

// Server serves the keys purposes on a kex server.
type Server struct {
	kex      *kex.Server
	purposes []string
}

// malformed answers a message that does not decode.
var malformed = &Result{Code: -32602, Message: "malformed request"}

// NewServer registers the purposes of hs on srv: each session reads one message of at most
// MaxMessage bytes and is answered with its handler's Result.
func NewServer(srv *kex.Server, hs Handlers) *Server {
	s := &Server{kex: srv}
	handle(s, PurposeEscrow, hs.Escrow)
	handle(s, PurposeUnlock, hs.Unlock)
	handle(s, PurposeProbe, hs.Probe)
	handle(s, PurposeRoundShare, hs.RoundShare)
	handle(s, PurposeCoordinators, hs.Coordinators)
	return s
}

func handle[M any](s *Server, purpose string, fn func(ctx context.Context, from peer.ID, m *M) *Result) {
	if fn == nil {
		return
	}
	kex.Answer(s.kex, purpose, MaxMessage, malformed, fn)
	s.purposes = append(s.purposes, purpose)
}

// Close removes the server's purposes from the kex server (sessions in progress run to their
// end). It is idempotent.
func (s *Server) Close() error {
	for _, p := range s.purposes {
		s.kex.RemoveHandler(p)
	}
	return nil
}
