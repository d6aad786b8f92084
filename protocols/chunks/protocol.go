// Package chunks is /califusion/chunks/1.0.0: peers serve the ciphertext chunks of models they
// hold, and a multi-source fetcher pulls a model from several of them at once.
//
// One request per stream. The client writes a Request frame and half-closes; the server answers
//
//	leaves request  → LeavesResponse frames, up to MaxLeavesPerFrame hashes each, from Request.From
//	chunks request  → one ChunkResponse per requested index, in request order
//
// and closes. Any error resets the stream; so does a refusal (ServerConfig: too many streams of
// this peer or in all, a request not sent or a reply not read within the idle timeout), which
// costs the server no read and no memory. Every chunk is checked against its Merkle leaf before it
// is kept, so providers need not be trusted: a provider that sends a bad chunk is dropped.
package chunks

import (
	"errors"
	"time"

	"github.com/califusion/califusion/node/content"
)

// ID is the protocol ID.
const ID = "/califusion/chunks/1.0.0"

// ServiceName is the resource-manager service of the protocol.
const ServiceName = "califusion.chunks"

// Limits of the protocol.
const (
	MaxRequestSize    = 2048
	MaxWindow         = 64
	MaxLeavesPerFrame = 1 << 16
	MaxChunkFrame     = content.MaxChunkSize + content.Overhead + 64
	MaxLeavesFrame    = 32*MaxLeavesPerFrame + 64
	StreamTimeout     = 2 * time.Minute
)

// Serving defaults (ServerConfig fields left zero take these).
const (
	// DefaultMaxStreams is how many chunk streams a server serves at once, all peers together.
	DefaultMaxStreams = 32
	// DefaultMaxStreamsPerPeer is how many chunk streams one peer may have served at once. It is
	// above what an honest fetcher opens (transfer.per_peer windows, 2 by default, plus a leaves
	// request), so only peers hoarding streams meet it.
	DefaultMaxStreamsPerPeer = 8
	// DefaultIdleTimeout is how long a server waits for a peer to send its request, or to take
	// the next piece of a reply, before it resets the stream.
	DefaultIdleTimeout = 5 * time.Second
)

// ServerConfig bounds what a server spends on its peers. A new stream is refused (reset before
// anything is read) when its peer already has MaxStreamsPerPeer streams served. When MaxStreams
// streams are served in all, a stream gives way to the newcomer if its peer holds at least two
// more streams than the newcomer's, or if it has sent nothing for IdleTimeout/5 and its peer holds
// more streams than the newcomer's; otherwise the newcomer is refused. A peer that lost a stream
// that way, or to the idle timeout, cannot make others give way for IdleTimeout. So neither a few
// peers holding many streams nor many peers holding one each can keep a reading peer out.
type ServerConfig struct {
	MaxStreams        int           // streams served at once, all peers; 0: DefaultMaxStreams
	MaxStreamsPerPeer int           // streams served at once to one peer; 0: DefaultMaxStreamsPerPeer
	IdleTimeout       time.Duration // longest wait for the request or for the reader; 0: DefaultIdleTimeout
}

// withDefaults fills the zero fields.
func (c ServerConfig) withDefaults() ServerConfig {
	if c.MaxStreams <= 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.MaxStreamsPerPeer <= 0 {
		c.MaxStreamsPerPeer = DefaultMaxStreamsPerPeer
	}
	c.MaxStreamsPerPeer = min(c.MaxStreamsPerPeer, c.MaxStreams)
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	return c
}

// Sentinel errors.
var (
	ErrUnknownModel = errors.New("model not held")
	ErrBadRequest   = errors.New("bad chunks request")
	ErrBadChunk     = errors.New("chunk does not match its Merkle leaf")
	ErrNoProviders  = errors.New("no provider could supply the model")
	ErrStalled      = errors.New("provider stalled")
	ErrBusy         = errors.New("chunk server is serving as many streams as it allows")
	ErrIdle         = errors.New("peer did not read its chunks in time")
)

// Request asks for leaves (Leaves set, from index From) or for the chunks at Indices.
type Request struct {
	Model   []byte   `cbor:"1,keyasint"`
	Leaves  bool     `cbor:"2,keyasint,omitempty"`
	From    uint64   `cbor:"3,keyasint,omitempty"`
	Indices []uint64 `cbor:"4,keyasint,omitempty"`
}

// LeavesResponse carries concatenated 32-byte leaf hashes starting at the requested index, and
// the model's total leaf count.
type LeavesResponse struct {
	Hashes []byte `cbor:"1,keyasint"`
	Total  uint64 `cbor:"2,keyasint"`
}

// ChunkResponse carries one chunk's ciphertext, or says the server does not hold it.
type ChunkResponse struct {
	Index   uint64 `cbor:"1,keyasint"`
	Data    []byte `cbor:"2,keyasint,omitempty"`
	Missing bool   `cbor:"3,keyasint,omitempty"`
}

func (r *Request) validate() error {
	switch {
	case len(r.Model) != 32:
		return errors.Join(ErrBadRequest, errors.New("model ID must be 32 bytes"))
	case r.Leaves && len(r.Indices) > 0:
		return errors.Join(ErrBadRequest, errors.New("ask for leaves or chunks, not both"))
	case !r.Leaves && (len(r.Indices) == 0 || len(r.Indices) > MaxWindow):
		return errors.Join(ErrBadRequest, errors.New("a chunks request names 1 to 64 indices"))
	}
	return nil
}
