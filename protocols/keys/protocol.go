// Package keys carries content keys over authenticated kex sessions:
//
//	escrow  publisher → coordinator  Deposit{signed manifest, key}        → Result
//	unlock  trainer   → coordinator  Unlock{model, ledger, block, payer}  → Result{key}
//	        (no ledger: a key the trainer is entitled to already, by a lineage payment)
//	probe   trainer   → coordinator  Probe{model}                         → Result{holds}
//	roundshare coordinator → coordinator RoundShare{model}                → Result{share, index}
//	coordinators publisher → coordinator Coordinators{signed update}      → Result
//
// For a threshold version (t-of-n escrow) a deposit carries the coordinator's share and index
// instead of the key, and an unlock answers with the share; the trainer rebuilds the key from t
// shares it checks against the manifest's share commitments.
//
// The coordinator checks a deposited key against the manifest's key commitment before it keeps
// it, and releases a key only against a verified payment recorded as consumed in the same store
// transaction that grants it (node/keys: Coordinator). Each message is one CBOR value in one
// session message; a Result's Code is a protocols/apierr code (the admin API's, shared/API.md),
// so a trainer reports the coordinator's refusal unchanged.
package keys

import (
	"crypto/sha256"
	"time"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Session purposes: a keys exchange is a kex session opened for one of them (they play the part
// of a protocol ID).
const (
	PurposeEscrow = "keys/escrow/1"
	PurposeUnlock = "keys/unlock/1"
	PurposeProbe  = "keys/probe/1" // does the coordinator hold a model's key? (asked before paying)
	// PurposeRoundShare: a fellow coordinator of a threshold lineage asks for this
	// coordinator's share of a version it runs a round on.
	PurposeRoundShare = "keys/roundshare/1"
	// PurposeCoordinators: a lineage's publisher hands a signed coordinator update to a
	// coordinator of the lineage.
	PurposeCoordinators = "keys/coordinators/1"
)

// What a Probe's Result says the coordinator holds.
const (
	HoldsKey   = "key"
	HoldsShare = "share"
)

// ServiceName is the resource-manager service keys sessions are accounted to: they travel on
// kex streams, attached to kex's service.
const ServiceName = kex.ServiceName

// StreamTimeout bounds one exchange on the client (Request uses the earlier of it and its ctx's
// deadline): long enough for a coordinator to verify a payment on its ledger.
const StreamTimeout = 2 * time.Minute

// MaxMessage caps one keys message.
const MaxMessage = 128 << 10

// Probe asks whether a coordinator holds a model's key; the Result is empty or not_found.
type Probe struct {
	Model []byte `cbor:"1,keyasint"`
}

// Deposit hands a model's content key to a coordinator; for a threshold version (the
// manifest's Threshold ≥ 2) Key is empty and Share is the coordinator's share, Index its
// position among the version's share holders (0-based: the share's x is Index + 1).
type Deposit struct {
	Manifest []byte `cbor:"1,keyasint"`
	Key      []byte `cbor:"2,keyasint"`
	Share    []byte `cbor:"3,keyasint,omitempty"`
	Index    uint   `cbor:"4,keyasint,omitempty"`
}

// RoundShare asks a coordinator for its share of a threshold version's key on behalf of a fellow
// coordinator of the lineage that runs a round on it; the Result carries Share and Index.
type RoundShare struct {
	Model []byte `cbor:"1,keyasint"`
}

// Coordinators hands a signed coordinator update (content.CoordinatorUpdate) to a coordinator,
// with the lineage root's signed manifest for a coordinator that has not heard of it yet.
type Coordinators struct {
	Update []byte `cbor:"1,keyasint"`
	Root   []byte `cbor:"2,keyasint,omitempty"`
}

// Unlock asks for a model's key against a payment. Without a Ledger it asks only for a key the
// trainer is entitled to already (it paid for the model's lineage, or published it); the
// refusal is then not_unlocked, and nothing is checked on a ledger.
type Unlock struct {
	Model  []byte `cbor:"1,keyasint"`
	Ledger string `cbor:"2,keyasint"`
	Block  uint64 `cbor:"3,keyasint"`
	Payer  string `cbor:"4,keyasint"` // the paying principal (textual)
}

// Result answers either message: Code 0 is success.
type Result struct {
	Code    int    `cbor:"1,keyasint,omitempty"`
	Message string `cbor:"2,keyasint,omitempty"`
	Key     []byte `cbor:"3,keyasint,omitempty"`
	// Share and Index answer an unlock (or a round share request) of a threshold version: the
	// coordinator's share and its position among the version's share holders.
	Share []byte `cbor:"4,keyasint,omitempty"`
	Index uint   `cbor:"5,keyasint,omitempty"`
	// Holds answers a probe: HoldsKey or HoldsShare.
	Holds string `cbor:"6,keyasint,omitempty"`
}

// Error is a refusal carried back from the coordinator.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return e.Message }

// Memo is the ICRC-1 memo that binds a payment to a lineage and a trainer:
// SHA-256("califusion/pay/v1" ‖ lineage ModelID ‖ trainer peer ID bytes).
func Memo(lineage [32]byte, trainer peer.ID) []byte {
	h := sha256.New()
	h.Write([]byte("califusion/pay/v1"))
	h.Write(lineage[:])
	h.Write([]byte(trainer))
	return h.Sum(nil)
}
