package kex

import (
	"context"
	"fmt"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Call opens a session for purpose to p, sends req as one CBOR message, and decodes the one
// answer of at most max bytes into resp: a request/response exchange inside a session.
func Call(ctx context.Context, h host.Host, p peer.ID, purpose string, req, resp any, max int) error {
	s, err := Dial(ctx, h, p, purpose)
	if err != nil {
		return err
	}
	defer s.Close()
	b, err := wire.Marshal(req)
	if err != nil {
		return err
	}
	if err := s.Send(ctx, b); err != nil {
		return err
	}
	raw, err := s.Recv(ctx, max)
	if err != nil {
		return fmt.Errorf("kex: %s gave no answer: %w", p, err)
	}
	return wire.Unmarshal(raw, resp)
}

// Answer registers fn for purpose on srv, the server side of Call: it reads one request of at
// most max bytes into a fresh M and sends back fn's answer; a request that does not decode is
// answered with malformed.
func Answer[M, R any](srv *Server, purpose string, max int, malformed *R, fn func(ctx context.Context, from peer.ID, m *M) *R) {
	srv.Handle(purpose, func(ctx context.Context, s *Session) error {
		raw, err := s.Recv(ctx, max)
		if err != nil {
			return err
		}
		var m M
		res := malformed
		if err := wire.Unmarshal(raw, &m); err == nil {
			res = fn(ctx, s.RemotePeer(), &m)
		}
		out, err := wire.Marshal(res)
		if err != nil {
			return err
		}
		return s.Send(ctx, out)
	})
}
