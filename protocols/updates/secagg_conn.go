package updates

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/wire"
)

// ErrInput is wrapped by the errors of a masked input's body.
var ErrInput = errors.New("malformed masked input")

// Conn is one side of an updates/secagg/1 session: typed messages, keepalives while waiting,
// the masked input's raw chunks.
type Conn struct {
	s *kex.Session
	// KeepaliveEvery is how often Wait sends a keepalive (0: the package's KeepaliveEvery).
	KeepaliveEvery time.Duration
}

// NewConn wraps a session opened (or accepted) for PurposeSecAgg.
func NewConn(s *kex.Session) *Conn { return &Conn{s: s} }

// Session returns the underlying session.
func (c *Conn) Session() *kex.Session { return c.s }

// Send encodes and sends one message (an *Up or a *Down).
func (c *Conn) Send(ctx context.Context, msg any) error {
	b, err := wire.Marshal(msg)
	if err != nil {
		return err
	}
	return c.s.Send(ctx, b)
}

// Keepalive sends one keepalive.
func (c *Conn) Keepalive(ctx context.Context) error { return c.s.Send(ctx, keepalive) }

// RecvUp reads the next Up of at most max bytes, skipping keepalives.
func (c *Conn) RecvUp(ctx context.Context, max int) (*Up, error) {
	for {
		b, err := c.s.Recv(ctx, max)
		if err != nil {
			return nil, err
		}
		if !IsKeepalive(b) {
			return DecodeUp(b)
		}
	}
}

// RecvDown reads the next Down of at most max bytes (at least MaxReceipt: a refusal may come
// at any time), skipping keepalives.
func (c *Conn) RecvDown(ctx context.Context, limit int) (*Down, error) {
	for {
		b, err := c.s.Recv(ctx, max(limit, MaxReceipt))
		if err != nil {
			return nil, err
		}
		if !IsKeepalive(b) {
			return DecodeDown(b)
		}
	}
}

// WaitDown is RecvDown that sends a keepalive every KeepaliveEvery while it waits, so that the
// peer's side of the session does not idle out; no keepalive is sent once it returns.
func (c *Conn) WaitDown(ctx context.Context, limit int) (*Down, error) {
	every := c.KeepaliveEvery
	if every <= 0 {
		every = KeepaliveEvery
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if c.Keepalive(ctx) != nil {
					return
				}
			}
		}
	}()
	d, err := c.RecvDown(ctx, limit)
	close(stop)
	wg.Wait()
	return d, err
}

// inputChunk is the size of a masked input's chunks: a multiple of 8 within BodyChunk.
const inputChunk = BodyChunk &^ 7

// SendInput sends a masked input: its header, then its coordinates in raw chunks.
func (c *Conn) SendInput(ctx context.Context, y []uint64) error {
	if err := c.Send(ctx, &Up{Input: &InputHeader{Coords: uint64(len(y))}}); err != nil {
		return err
	}
	buf := make([]byte, 0, min(len(y)*8, inputChunk))
	for len(y) > 0 {
		n := min(len(y), inputChunk/8)
		buf = buf[:0]
		for _, v := range y[:n] {
			buf = binary.LittleEndian.AppendUint64(buf, v)
		}
		if err := c.s.Send(ctx, buf); err != nil {
			return err
		}
		y = y[n:]
	}
	return nil
}

// RecvInput reads the body of a masked input of coords coordinates whose header was received:
// messages of 8·k bytes, at most BodyChunk each and never past coords (ErrInput otherwise).
// hash, if set, sees every byte of the body.
func (c *Conn) RecvInput(ctx context.Context, coords int, hash func([]byte)) ([]uint64, error) {
	y := make([]uint64, 0, coords)
	for len(y) < coords {
		b, err := c.s.Recv(ctx, min((coords-len(y))*8, inputChunk))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInput, err)
		}
		if len(b) == 0 || len(b)%8 != 0 {
			return nil, fmt.Errorf("%w: a chunk of %d bytes is not a whole number of coordinates", ErrInput, len(b))
		}
		if hash != nil {
			hash(b)
		}
		for i := 0; i < len(b); i += 8 {
			y = append(y, binary.LittleEndian.Uint64(b[i:]))
		}
	}
	return y, nil
}
