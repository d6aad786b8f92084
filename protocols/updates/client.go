package updates

import (
	"context"
	"fmt"
	"io"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Request opens a session for purpose to p, sends msg and returns the Receipt; a refusal is an
// *Error. It waits at most StreamTimeout, or less as ctx says.
func Request(ctx context.Context, h host.Host, p peer.ID, purpose string, msg any) (*Receipt, error) {
	ctx, cancel := context.WithTimeout(ctx, StreamTimeout)
	defer cancel()
	var r Receipt
	if err := kex.Call(ctx, h, p, purpose, msg, &r, MaxReceipt); err != nil {
		return nil, err
	}
	if r.Code != 0 {
		return nil, &Error{Code: r.Code, Message: r.Message, Reason: r.Reason, Norm: r.Norm}
	}
	return &r, nil
}

// Submit sends an update to the coordinator p: the header signed with h's identity key, then,
// if the coordinator says go, size bytes of body. A refusal (before or after the body) is an
// *Error. sum must be the SHA-256 of the body. It waits at most StreamTimeout, or less as ctx
// says.
func Submit(ctx context.Context, h host.Host, p peer.ID, round string, samples uint64, sum []byte, size uint64, body io.Reader) (*Receipt, error) {
	ctx, cancel := context.WithTimeout(ctx, StreamTimeout)
	defer cancel()
	hdr, err := Sign(h.Peerstore().PrivKey(h.ID()), &Statement{
		Round: round, Samples: samples, SHA256: sum, Size: size, Trainer: h.ID().String(), Coordinator: p.String(),
	})
	if err != nil {
		return nil, err
	}
	s, err := kex.Dial(ctx, h, p, PurposeSubmit)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	b, err := wire.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	if err := s.Send(ctx, b); err != nil {
		return nil, err
	}
	r, err := receive(ctx, s, p)
	if err != nil || !r.Go {
		if err == nil {
			err = fmt.Errorf("%s answered the header with neither go nor a refusal", p)
		}
		return nil, err
	}
	if err := sendBody(ctx, s, body, size); err != nil {
		return nil, err
	}
	return receive(ctx, s, p)
}

// sendBody sends exactly size bytes of body in messages of BodyChunk bytes.
func sendBody(ctx context.Context, s *kex.Session, body io.Reader, size uint64) error {
	buf := make([]byte, min(size, BodyChunk))
	for left := size; left > 0; {
		n, err := io.ReadFull(body, buf[:min(left, uint64(len(buf)))])
		if err != nil {
			return fmt.Errorf("read the update: %w", err)
		}
		if err := s.Send(ctx, buf[:n]); err != nil {
			return err
		}
		left -= uint64(n)
	}
	return nil
}

// receive reads one Receipt; a refusal is an *Error.
func receive(ctx context.Context, s *kex.Session, p peer.ID) (*Receipt, error) {
	raw, err := s.Recv(ctx, MaxReceipt)
	if err != nil {
		return nil, fmt.Errorf("kex: %s gave no answer: %w", p, err)
	}
	var r Receipt
	if err := wire.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%s answered with a malformed receipt: %w", p, err)
	}
	if r.Code != 0 {
		return nil, &Error{Code: r.Code, Message: r.Message, Reason: r.Reason, Norm: r.Norm}
	}
	return &r, nil
}
