package catalog

import (
	"context"

	"github.com/califusion/califusion/node/content"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
)

// Routing finds the peers that provide a content ID: the DHT.
type Routing interface {
	FindProvidersAsync(ctx context.Context, key cid.Cid, count int) <-chan peer.AddrInfo
}

// Provider announces in the DHT that this node serves content: the DHT's provide system.
type Provider interface {
	StartProviding(force bool, keys ...multihash.Multihash) error
}

// Anchors is what the catalog uses of anchoring: the validly anchored manifests, read to fill the
// catalog, and the state remembered for each one admitted (node/anchoring.Service).
type Anchors interface {
	On() bool
	List(ctx context.Context, verify func(record []byte) error) ([][]byte, int, error)
	Remember(id content.ModelID, state string)
}

// Holdings tells how many chunks of a model this node holds without opening its blob
// (node/fetch.ChunkStore).
type Holdings interface {
	Held(id [32]byte, chunks uint64) uint64
}
