package updates

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Upload is a submission whose body has been received, spooled to Path and hash-checked.
type Upload struct {
	Statement *Statement
	Header    *Header // as received: the signed statement
	Path      string  // 0600 file holding the body; removed after Accept returns (rename it to keep it)
}

// Coordinator is the coordinator's side of the protocol: submissions (updates/submit/2) and
// round queries (updates/round/1).
type Coordinator struct {
	Dir     string // where bodies are spooled (created 0700)
	MaxSize uint64 // largest body accepted, in bytes
	// Decide judges a header before any body byte is read: nil lets the body come, a Receipt
	// refuses it.
	Decide func(ctx context.Context, from peer.ID, s *Statement) *Receipt
	// Accept verifies and keeps a received body and answers the trainer.
	Accept func(ctx context.Context, from peer.ID, u *Upload) *Receipt
	// Release, if set, runs after every submission Decide let through, whether its body arrived
	// or not (the coordinator frees what Decide reserved).
	Release func(from peer.ID, s *Statement)
	// Round answers a query for the state of a round.
	Round func(ctx context.Context, from peer.ID, q *Query) *Receipt
	// Report answers a trainer's query for its report on a round (updates/report/1).
	Report func(ctx context.Context, from peer.ID, q *Query) *Receipt
	// SecAgg serves one secure round's dialogue (updates/secagg/1, secagg.go): the session is
	// the handler's from its first byte.
	SecAgg func(ctx context.Context, s *kex.Session) error

	refused, refusedBytes atomic.Int64
}

// Refusals reports how many submissions were refused before their body, and how many session
// bytes (after the handshake) were read from them in all.
func (c *Coordinator) Refusals() (count, bytesRead int64) {
	return c.refused.Load(), c.refusedBytes.Load()
}

func (c *Coordinator) refuse(ctx context.Context, s *kex.Session, r *Receipt) error {
	c.refused.Add(1)
	c.refusedBytes.Add(s.BytesRead())
	return answer(ctx, s, r)
}

// Server serves a Coordinator's purposes on a kex server.
type Server struct {
	kex      *kex.Server
	purposes []string
}

// NewServer registers c on srv: for PurposeSubmit when c.Decide and c.Accept are set, for
// PurposeRound when c.Round is set and for PurposeReport when c.Report is set (a query of at
// most MaxReceipt bytes; one that does not decode is answered with -32602), and for
// PurposeSecAgg when c.SecAgg is set.
func NewServer(srv *kex.Server, c *Coordinator) *Server {
	s := &Server{kex: srv}
	if c.Decide != nil && c.Accept != nil {
		srv.Handle(PurposeSubmit, c.serve)
		s.purposes = append(s.purposes, PurposeSubmit)
	}
	if c.Round != nil {
		kex.Answer(srv, PurposeRound, MaxReceipt, &Receipt{Code: -32602, Message: "malformed request"}, c.Round)
		s.purposes = append(s.purposes, PurposeRound)
	}
	if c.Report != nil {
		kex.Answer(srv, PurposeReport, MaxReceipt, &Receipt{Code: -32602, Message: "malformed request"}, c.Report)
		s.purposes = append(s.purposes, PurposeReport)
	}
	if c.SecAgg != nil {
		srv.Handle(PurposeSecAgg, c.SecAgg)
		s.purposes = append(s.purposes, PurposeSecAgg)
	}
	return s
}

// Close removes the server's purposes from the kex server (sessions in progress run to their
// end). It is idempotent.
func (s *Server) Close() error {
	for _, p := range s.purposes {
		s.kex.RemoveHandler(p)
	}
	return nil
}

func answer(ctx context.Context, s *kex.Session, r *Receipt) error {
	b, err := wire.Marshal(r)
	if err != nil {
		return err
	}
	return s.Send(ctx, b)
}

// serve runs one submission: header, decision, body, verdict.
func (c *Coordinator) serve(ctx context.Context, s *kex.Session) error {
	from := s.RemotePeer()
	raw, err := s.Recv(ctx, MaxHeader)
	if err != nil {
		return err
	}
	var h Header
	if err := wire.Unmarshal(raw, &h); err != nil {
		return c.refuse(ctx, s, &Receipt{Code: -32602, Message: "malformed submission header"})
	}
	st, err := h.Open(from)
	switch {
	case errors.Is(err, ErrSignature):
		return c.refuse(ctx, s, &Receipt{Code: 1005, Message: err.Error()})
	case err != nil:
		return c.refuse(ctx, s, &Receipt{Code: -32602, Message: err.Error()})
	case st.Coordinator != s.LocalPeer().String():
		return c.refuse(ctx, s, &Receipt{Code: -32602, Message: fmt.Sprintf("the submission is addressed to %s, not to this coordinator", st.Coordinator)})
	case st.Size > c.MaxSize:
		return c.refuse(ctx, s, &Receipt{Code: 1007, Reason: "size", Message: fmt.Sprintf("update rejected: %d bytes exceeds this coordinator's limit of %d bytes", st.Size, c.MaxSize)})
	}
	if r := c.Decide(ctx, from, st); r != nil {
		return c.refuse(ctx, s, r)
	}
	if c.Release != nil {
		defer c.Release(from, st)
	}
	if err := answer(ctx, s, &Receipt{Go: true}); err != nil {
		return err
	}
	path, err := c.spool(ctx, s, st)
	if path != "" {
		defer os.Remove(path)
	}
	switch {
	case errors.Is(err, ErrHash):
		return answer(ctx, s, &Receipt{Code: 1005, Message: err.Error()})
	case err != nil:
		return err // the body did not arrive whole: the session is reset
	}
	return answer(ctx, s, c.Accept(ctx, from, &Upload{Statement: st, Header: &h, Path: path}))
}

// spool receives exactly st.Size bytes into a fresh 0600 file in c.Dir, hashing them, and
// checks the hash; it returns the file's path whenever it created one.
func (c *Coordinator) spool(ctx context.Context, s *kex.Session, st *Statement) (string, error) {
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(c.Dir, "submit-*.part") // mode 0600
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), &BodyReader{ctx: ctx, s: s, left: st.Size})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && string(h.Sum(nil)) != string(st.SHA256) {
		err = ErrHash
	}
	return f.Name(), err
}

// BodyReader reads a submission's body from a session: exactly the declared number of bytes,
// in messages of 1..BodyChunk bytes, never more (a longer message resets the session).
type BodyReader struct {
	ctx  context.Context
	s    *kex.Session
	left uint64 // bytes still due
	buf  []byte // the unread rest of the last message
}

// NewBodyReader returns a reader of the size-byte body that follows a Go on s.
func NewBodyReader(ctx context.Context, s *kex.Session, size uint64) *BodyReader {
	return &BodyReader{ctx: ctx, s: s, left: size}
}

// Read implements io.Reader.
func (r *BodyReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		if r.left == 0 {
			return 0, io.EOF
		}
		msg, err := r.s.Recv(r.ctx, int(min(r.left, BodyChunk)))
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrBody, err)
		}
		if len(msg) == 0 {
			return 0, fmt.Errorf("%w: an empty body message", ErrBody)
		}
		r.left -= uint64(len(msg))
		r.buf = msg
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
