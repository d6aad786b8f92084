package store

import "time"

// Paid is a payment this node makes for a lineage. It is written before the transfer with the
// exact transfer arguments, so that a retry (after an error, a timeout or a crash) sends the
// same transaction and the ledger deduplicates it; Done is set, with the block, once the ledger
// answered.
type Paid struct {
	To         string    `cbor:"1,keyasint"`  // payee principal
	Subaccount []byte    `cbor:"2,keyasint"`  // payee subaccount, empty for the default
	Amount     string    `cbor:"3,keyasint"`  // base units, decimal
	Memo       []byte    `cbor:"4,keyasint"`  // binds lineage and trainer
	CreatedAt  uint64    `cbor:"5,keyasint"`  // created_at_time (ns), the same on every retry
	FromBlock  uint64    `cbor:"6,keyasint"`  // ledger length before the first attempt: where a search starts
	Model      string    `cbor:"7,keyasint"`  // the model paid for (hex ModelID)
	Started    time.Time `cbor:"8,keyasint"`  // when the record was made
	Done       bool      `cbor:"9,keyasint"`  // the ledger executed it: Block is the payment
	Block      uint64    `cbor:"10,keyasint"` // the payment's block, once Done
	PaidAt     time.Time `cbor:"11,keyasint"` // when Done was recorded
}
