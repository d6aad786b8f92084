// Package kex is /califusion/kex/1.0.0: an authenticated X25519 key exchange on a libp2p stream,
// after which the stream carries AES-256-GCM frames. Every secret CaliFusion moves (escrowed keys,
// released keys, updates) travels inside such a session, end to end and independent of the
// transport's own encryption.
//
// # Handshake
//
// I is the initiator (it dialled), R the responder; each knows the other's peer ID from the
// stream. All messages are protocols/wire frames.
//
//	I → R  Hello  {purpose, e_I (X25519 public key), n_I (32 random bytes)}
//	R → I  Reply  {e_R, n_R, sig_R}
//	I → R  Finish {sig_I}
//
// The transcript hash is
//
//	T = SHA-256("califusion/kex/v1" ‖ lp(protocol ID) ‖ lp(purpose) ‖ lp(id_I) ‖ lp(id_R) ‖
//	            e_I ‖ e_R ‖ n_I ‖ n_R)
//
// where lp(x) is x prefixed by its length as uint16be. sig_R is R's identity-key signature over
// "califusion/kex/v1/responder" ‖ T and sig_I is I's over "califusion/kex/v1/initiator" ‖ T. Each
// side checks the other's signature with the public key of the peer ID it dialled or accepted, so
// a man in the middle who does not hold that identity key cannot complete the handshake. R
// refuses a Hello whose n_I it has seen in the last ReplayWindow (ErrReplay).
//
// Keys: s = X25519(e_I, e_R); k_IR = HKDF-SHA256(s, salt = T, info = "califusion/kex/v1 I->R"),
// k_RI likewise with "R->I"; 32 bytes each. Ephemeral private keys are discarded after the
// handshake and session keys are zeroed by Close.
//
// # Frames
//
// After the handshake each direction sends frames: uvarint length ‖ AES-256-GCM ciphertext, with
// nonce = 0x00000000 ‖ uint64be(counter) (the counter starts at 0 in each direction and is never
// sent) and T as associated data. A frame that is replayed, reordered, dropped or altered fails to
// open (ErrTampered), and the session is dead. The plaintext of a frame is a flag byte (1: last
// frame of a message) and up to MaxFramePayload bytes, so a message of any size up to the
// receiver's limit travels as a sequence of frames.
//
// # Limits
//
// A server accepts streams through protocols/wire.Handler, whose steps come in its order, and
// bounds every session it accepts (defaults in protocol.go, each settable with an Option):
//
//   - the stream is attached to the resource-manager service "califusion.kex" and reserves the
//     handshake's buffers before anything is read, then its frame buffer as it grows (at most
//     one frame, released when the session ends); a refused reservation resets it;
//   - a remote peer holds at most MaxSessionsPerPeer sessions at once and the server at most
//     MaxSessions in total, handshakes included: the stream of one more is reset before its
//     Hello is read, so a few peers holding idle sessions cannot lock others out;
//   - the handshake must complete within StreamTimeout;
//   - after it, every frame read or written waits at most IdleTimeout for the peer, whatever
//     the handler's context says, and the session ends SessionLifetime after its stream opened
//     (the handler's context carries that deadline). A peer that falls silent is reset (ErrIdle,
//     ErrExpired) and its slot is freed.
//
// A dialled session waits at most DialIdleTimeout per frame (or less, as its ctx says).
package kex
