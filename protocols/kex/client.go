package kex

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Dial opens a session to p for purpose, authenticating p by its peer ID and this node by h's
// identity key.
func Dial(ctx context.Context, h host.Host, p peer.ID, purpose string) (*Session, error) {
	if purpose == "" || len(purpose) > MaxPurposeLen {
		return nil, fmt.Errorf("kex: purpose must be 1..%d bytes", MaxPurposeLen)
	}
	key := h.Peerstore().PrivKey(h.ID())
	if key == nil {
		return nil, fmt.Errorf("kex: host has no identity key")
	}
	hctx, cancel := context.WithTimeout(ctx, StreamTimeout)
	defer cancel()
	st, err := h.NewStream(hctx, p, ID)
	if err != nil {
		return nil, fmt.Errorf("kex: open stream to %s: %w", p, err)
	}
	fail := func(err error) (*Session, error) {
		st.Reset()
		return nil, err
	}
	deadline, _ := hctx.Deadline()
	st.SetDeadline(deadline)
	stop := context.AfterFunc(hctx, func() { st.Reset() })
	defer stop()

	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return fail(err)
	}
	hi := hello{Purpose: purpose, Eph: eph.PublicKey().Bytes(), Nonce: make([]byte, 32)}
	rand.Read(hi.Nonce)
	if err := wire.WriteFrame(st, &hi); err != nil {
		return fail(fmt.Errorf("kex: send hello to %s: %w", p, err))
	}
	var rep reply
	if err := wire.ReadFrame(st, MaxHandshakeMsg, &rep); err != nil {
		return fail(fmt.Errorf("kex: read reply from %s (no handler for %q, or too many sessions open?): %w", p, purpose, err))
	}
	if err := rep.check(); err != nil {
		return fail(err)
	}
	remote := st.Conn().RemotePeer()
	if remote != p {
		return fail(fmt.Errorf("%w: dialled %s, reached %s", ErrPeerMismatch, p, remote))
	}
	t := transcript(purpose, h.ID(), p, hi.Eph, rep.Eph, hi.Nonce, rep.Nonce)
	if err := verify(st.Conn(), h.Peerstore(), p, sigResponder, t, rep.Sig); err != nil {
		return fail(err)
	}
	sig, err := sign(key, sigInitiator, t)
	if err != nil {
		return fail(err)
	}
	if err := wire.WriteFrame(st, &finish{Sig: sig}); err != nil {
		return fail(fmt.Errorf("kex: send finish to %s: %w", p, err))
	}
	s, err := newSession(st, p, purpose, eph, rep.Eph, t, true)
	if err != nil {
		return fail(err)
	}
	st.SetDeadline(time.Time{})
	s.idle = DialIdleTimeout
	return s, nil
}
