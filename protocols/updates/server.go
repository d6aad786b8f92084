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
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// statementDomain prefixes the bytes a trainer signs.
const statementDomain = "califusion/updates/submit/v2"

// Statement is what a trainer claims about an update it submits, signed with its identity key.
type Statement struct {
	Round       string `cbor:"1,keyasint"`
	Samples     uint64 `cbor:"2,keyasint"` // training samples the update was computed from
	SHA256      []byte `cbor:"3,keyasint"` // of the update file
	Size        uint64 `cbor:"4,keyasint"` // bytes of the update file
	Trainer     string `cbor:"5,keyasint"` // peer ID of the signer
	Coordinator string `cbor:"6,keyasint"` // peer ID the update is for, so it cannot be replayed elsewhere
}

// Header opens a submission: the statement as signed, and the signature.
type Header struct {
	Statement []byte `cbor:"1,keyasint"`           // CBOR of a Statement
	Sig       []byte `cbor:"2,keyasint"`           // over statementDomain ‖ Statement
	PubKey    []byte `cbor:"3,keyasint,omitempty"` // the signer's key, when its peer ID does not embed it
}

// Check validates a statement's fields (not the claims, which the coordinator judges).
func (s *Statement) Check() error {
	switch {
	case s.Round == "" || len(s.Round) > maxRoundLen:
		return fmt.Errorf("%w: round ID of %d bytes", ErrMalformed, len(s.Round))
	case len(s.SHA256) != sha256.Size:
		return fmt.Errorf("%w: a SHA-256 has 32 bytes, not %d", ErrMalformed, len(s.SHA256))
	case s.Size == 0:
		return fmt.Errorf("%w: empty update", ErrMalformed)
	}
	if _, err := peer.Decode(s.Trainer); err != nil {
		return fmt.Errorf("%w: trainer %q is not a peer ID", ErrMalformed, s.Trainer)
	}
	if _, err := peer.Decode(s.Coordinator); err != nil {
		return fmt.Errorf("%w: coordinator %q is not a peer ID", ErrMalformed, s.Coordinator)
	}
	return nil
}

// Sign encodes s and signs it with key, the trainer's identity key.
func Sign(key crypto.PrivKey, s *Statement) (*Header, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	b, err := wire.Marshal(s)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(append([]byte(statementDomain), b...))
	if err != nil {
		return nil, fmt.Errorf("sign the submission: %w", err)
	}
	h := &Header{Statement: b, Sig: sig}
	if id, err := peer.IDFromPrivateKey(key); err != nil {
		return nil, err
	} else if _, err := id.ExtractPublicKey(); err != nil {
		if h.PubKey, err = crypto.MarshalPublicKey(key.GetPublic()); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Open decodes the statement of a header received from from and checks that from signed it and
// names itself as the trainer; the same check proves the claim to a third party later.
func (h *Header) Open(from peer.ID) (*Statement, error) {
	var s Statement
	if err := wire.Unmarshal(h.Statement, &s); err != nil {
		return nil, fmt.Errorf("%w: statement: %v", ErrMalformed, err)
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	if s.Trainer != from.String() {
		return nil, fmt.Errorf("%w: it names %s as the trainer", ErrSignature, s.Trainer)
	}
	pub, err := from.ExtractPublicKey()
	if err != nil {
		if pub, err = crypto.UnmarshalPublicKey(h.PubKey); err != nil || !from.MatchesPublicKey(pub) {
			return nil, fmt.Errorf("%w: no public key for %s", ErrSignature, from)
		}
	}
	if ok, err := pub.Verify(append([]byte(statementDomain), h.Statement...), h.Sig); err != nil || !ok {
		return nil, ErrSignature
	}
	return &s, nil
}

// Upload is a submission whose body has been received, spooled to Path and hash-checked.
type Upload struct {
	Statement *Statement
	Header    *Header // as received: the signed statement
	Path      string  // 0600 file holding the body; removed after Accept returns (rename it to keep it)
}

// Coordinator is the coordinator's side of updates/submit/2.
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

// ServeSubmit registers c on a kex server for PurposeSubmit.
func ServeSubmit(srv *kex.Server, c *Coordinator) {
	srv.Handle(PurposeSubmit, c.serve)
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

// Submit sends an update to the coordinator p: the header signed with h's identity key, then,
// if the coordinator says go, size bytes of body. A refusal (before or after the body) is an
// *Error. sum must be the SHA-256 of the body.
func Submit(ctx context.Context, h host.Host, p peer.ID, round string, samples uint64, sum []byte, size uint64, body io.Reader) (*Receipt, error) {
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
