package store

import (
	"math/bits"
	"time"
)

// PaymentRecord says which trainer and lineage consumed a payment block.
type PaymentRecord struct {
	Trainer string    `cbor:"1,keyasint"`
	Lineage []byte    `cbor:"2,keyasint"`
	Amount  string    `cbor:"3,keyasint"`
	At      time.Time `cbor:"4,keyasint"`
}

// Grant records that a trainer paid for a lineage, with which block.
type Grant struct {
	Ledger string    `cbor:"1,keyasint"`
	Block  uint64    `cbor:"2,keyasint"`
	At     time.Time `cbor:"3,keyasint"`
	// Payer is the principal whose payment the coordinator verified: where a campaign's rewards
	// for the trainer go (empty in grants from before it was recorded).
	Payer string `cbor:"4,keyasint,omitempty"`
}

// ModelRecord is a model in the catalog: its signed manifest (which verifies itself) and how
// this node came to know it.
type ModelRecord struct {
	Manifest []byte    `cbor:"1,keyasint"`
	Source   string    `cbor:"2,keyasint"` // "published", "gossip", "catalog", "anchor"
	Added    time.Time `cbor:"3,keyasint"`
}

// Bitmap is a set of chunk indices, bit i of byte i/8 (LSB first).
type Bitmap []byte

// NewBitmap returns an empty bitmap for n chunks.
func NewBitmap(n uint64) Bitmap { return make(Bitmap, (n+7)/8) }

// Has reports whether i is in the set.
func (b Bitmap) Has(i uint64) bool { return i/8 < uint64(len(b)) && b[i/8]&(1<<(i%8)) != 0 }

// Set adds i to the set; an i beyond the bitmap's size is ignored.
func (b Bitmap) Set(i uint64) {
	if i/8 < uint64(len(b)) {
		b[i/8] |= 1 << (i % 8)
	}
}

// Count returns the number of indices in the set.
func (b Bitmap) Count() uint64 {
	var n int
	for _, x := range b {
		n += bits.OnesCount8(x)
	}
	return uint64(n)
}

// Pin records that a model's ciphertext is kept whatever the storage policy says (model pin).
type Pin struct {
	At time.Time `cbor:"1,keyasint"`
}
