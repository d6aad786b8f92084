package store

import (
	"encoding/hex"
	"fmt"
)

// This file is the store's schema: every key namespace, its key helpers, and the Schema table
// that says for each one the key layout, the value's record type and who writes it (geth's
// core/rawdb/schema.go does the same). A new namespace is added here, to the constants, the
// helpers and the table, before any code writes under it; TestSchema checks that prefixes do not
// overlap and that every prefix has a helper.
//
// Values are the node's own record types (declared in this package, or beside the node code that
// owns them), never a wire or API type: a change to gossip CBOR or to the admin JSON must not
// change what is stored. Converting a record to or from a protocol type is done at the edge that
// speaks the protocol.

// Key is a store key: "<namespace>/<id>" in ASCII, laid out as the Schema table says.
type Key []byte

// String returns the key as text, for errors and logs.
func (k Key) String() string { return string(k) }

// Namespace prefixes. Each ends in "/", so none is a prefix of another and each can be scanned.
const (
	nsMeta     = "meta/"
	nsPeer     = "peer/"
	nsPresence = "presence/"
	nsJob      = "job/"
	nsModel    = "model/"
	nsLeaves   = "leaves/"
	nsHave     = "have/"
	nsKey      = "key/"
	nsPayment  = "payment/" // payments a coordinator consumed
	nsGrant    = "grant/"
	nsPaid     = "paid/" // payments this node makes (the trainer side)
	nsRound    = "round/"
	nsUpdate   = "update/"
	nsReport   = "report/"
	nsTrained  = "trained/"
	nsPenalty  = "penalty/"
	nsPin      = "pin/"
	nsShare    = "share/"    // key shares a coordinator of a threshold lineage holds
	nsCoordSet = "coordset/" // signed coordinator updates, one per lineage
	nsSecure   = "secure/"   // a trainer's part in secure rounds
	nsCampaign = "campaign/" // a coordinator's campaigns (node/campaign)
	nsPayout   = "payout/"   // a coordinator's reward payments to contributors (node/campaign)
)

// Namespace describes one key namespace of the store.
type Namespace struct {
	Prefix string // the key prefix, ending in "/"
	Key    string // the layout of the rest of the key
	Value  string // the record type stored at each key (deterministic CBOR)
	Owner  string // what writes it, and when
}

// Schema lists every key namespace of the store. It is the one place the schema is written down.
var Schema = []Namespace{
	{nsMeta, `name ("schema")`, "uint64 schema version (SchemaVersion)", "Open, after the migrations (migrate.go)"},
	{nsPeer, "peer ID", "PeerRecord (last addresses)", "node/discovery (PeerBook), on every new connection"},
	{nsPresence, "peer ID", "Presence (roles, version, addresses)", "node/presence, on a valid presence message"},
	{nsJob, "job ID (hex)", "jobs.Status (node/jobs)", "node/jobs, on start, progress and end"},
	{nsModel, "ModelID (hex)", "ModelRecord (signed manifest)", "node/catalog, on publish (node/publish) or a valid announcement"},
	{nsLeaves, "ModelID (hex)", "[]byte: 32-byte Merkle leaf hashes, concatenated", "node/fetch, on publish or once checked against the root"},
	{nsHave, "ModelID (hex)", "Bitmap of durable, verified chunks", "node/fetch (ChunkStore), after the blob file is synced"},
	{nsKey, "ModelID (hex)", "[]byte: content key, AES-GCM-wrapped under the master key", "node/keys (Keyring: publish, unlock, escrow)"},
	{nsPayment, "ledger canister ID / block (%020d)", "PaymentRecord (who consumed the block)", "node/keys (Coordinator), in the grant's transaction"},
	{nsGrant, "lineage (hex) / peer ID", "Grant (which block paid)", "node/keys (Coordinator), in the payment's transaction"},
	{nsPaid, "ledger canister ID / lineage (hex) / payer principal", "Paid (outgoing payment)", "node/keys (Client.Pay), synced before the transfer, then with its block"},
	{nsRound, "round ID (hex)", "RoundRecord", "node/rounds: the coordinator (authoritative), others from gossip"},
	{nsUpdate, "round ID / peer ID", "node/rounds updateRecord (submissions.go)", "coordinator, once an update is verified"},
	{nsReport, "round ID", "ReportRecord", "node/rounds (aggregation.go), when the round ends with an aggregate"},
	{nsTrained, "update ID (hex)", "node/rounds trainedUpdate (training.go)", "trainer, after a hook run and on submission"},
	{nsPenalty, "peer ID", "Penalty (bad data served)", "node/fetch (Penalise), when a fetch drops a provider for bad data"},
	{nsPin, "ModelID (hex)", "Pin (when the model was pinned)", "node/storage, on model pin; deleted on unpin"},
	{nsShare, "ModelID (hex)", "[]byte: share index (1 byte) ‖ key share, AES-GCM-wrapped under the master key", "node/keys (Keyring: share escrow at a coordinator of a threshold lineage)"},
	{nsCoordSet, "lineage ModelID (hex)", "[]byte: the signed content.CoordinatorUpdate with the highest Seq", "node/catalog (SetCoordinators), on a verified update from the lineage's publisher"},
	{nsPayout, "round ID/trainer peer ID", "node/campaign Payout: the transfer, recorded (synced) before it is sent, and its block once done", "coordinator, when it pays a campaign round's contributor"},
	{nsCampaign, "campaign ID", "node/campaign Record: its parameters, state and one entry per round", "coordinator, on campaign_start and as each of its rounds ends"},
	{nsSecure, "round ID", "node/rounds secureTrainer (secure_trainer.go): joined, contributed, dropped or failed", "trainer, when a coordinator admits its join to a secure round and as the dialogue ends"},
}

// MetaKey is the key of store metadata entry name.
func MetaKey(name string) Key { return Key(nsMeta + name) }

// schemaKey is the key of the schema version.
var schemaKey = MetaKey("schema")

// PeerKey is the key of the PeerRecord of peer id.
func PeerKey(id string) Key { return Key(nsPeer + id) }

// PeerPrefix is the prefix of every PeerRecord.
func PeerPrefix() Key { return Key(nsPeer) }

// PresenceKey is the key of the Presence of peer id.
func PresenceKey(id string) Key { return Key(nsPresence + id) }

// PresencePrefix is the prefix of every Presence.
func PresencePrefix() Key { return Key(nsPresence) }

// JobKey is the key of the status of job id.
func JobKey(id string) Key { return Key(nsJob + id) }

// JobPrefix is the prefix of every job status.
func JobPrefix() Key { return Key(nsJob) }

// ModelKey is the key of the ModelRecord of model id.
func ModelKey(id [32]byte) Key { return Key(nsModel + hex.EncodeToString(id[:])) }

// ModelPrefix is the prefix of every ModelRecord.
func ModelPrefix() Key { return Key(nsModel) }

// LeavesKey is the key of model id's Merkle leaf hashes (32 bytes each, concatenated).
func LeavesKey(id [32]byte) Key { return Key(nsLeaves + hex.EncodeToString(id[:])) }

// HaveKey is the key of the Bitmap of model id's chunks that are durably stored and verified.
func HaveKey(id [32]byte) Key { return Key(nsHave + hex.EncodeToString(id[:])) }

// ShareKey is the key of this node's share of model id's content key, wrapped under the master key.
func ShareKey(id [32]byte) Key { return Key(nsShare + hex.EncodeToString(id[:])) }

// SharePrefix is the prefix of every stored key share.
func SharePrefix() Key { return Key(nsShare) }

// KeyPrefix is the prefix of every stored content key.
func KeyPrefix() Key { return Key(nsKey) }

// CoordSetKey is the key of the latest signed coordinator update of lineage.
func CoordSetKey(lineage [32]byte) Key { return Key(nsCoordSet + hex.EncodeToString(lineage[:])) }

// CoordSetPrefix is the prefix of every stored coordinator update.
func CoordSetPrefix() Key { return Key(nsCoordSet) }

// KeyKey is the key of model id's content key, wrapped under the node's master key.
func KeyKey(id [32]byte) Key { return Key(nsKey + hex.EncodeToString(id[:])) }

// PaymentKey is the key of a consumed payment: ledger canister ID and block index.
func PaymentKey(ledger string, block uint64) Key {
	return Key(fmt.Sprintf("%s%s/%020d", nsPayment, ledger, block))
}

// GrantKey is the key of a trainer's access to a lineage.
func GrantKey(lineage [32]byte, trainer string) Key {
	return Key(nsGrant + hex.EncodeToString(lineage[:]) + "/" + trainer)
}

// PaidKey is the key of this node's payment for a lineage: the ledger canister ID, the lineage
// root and the paying principal (a new identity_pem is a new payer).
func PaidKey(ledger string, lineage [32]byte, payer string) Key {
	return Key(nsPaid + ledger + "/" + hex.EncodeToString(lineage[:]) + "/" + payer)
}

// PaidPrefix is the prefix of every payment this node made.
func PaidPrefix() Key { return Key(nsPaid) }

// RoundKey is the key of the RoundRecord of round id.
func RoundKey(id string) Key { return Key(nsRound + id) }

// RoundPrefix is the prefix of every RoundRecord.
func RoundPrefix() Key { return Key(nsRound) }

// UpdateKey is the key of the update a trainer submitted to a round this node coordinates.
func UpdateKey(round, trainer string) Key { return Key(nsUpdate + round + "/" + trainer) }

// UpdatePrefix is the prefix of every update submitted to round.
func UpdatePrefix(round string) Key { return Key(nsUpdate + round + "/") }

// ReportKey is the key of the ReportRecord of round.
func ReportKey(round string) Key { return Key(nsReport + round) }

// TrainedKey is the key of an update this node trained, by update ID.
func TrainedKey(id string) Key { return Key(nsTrained + id) }

// TrainedPrefix is the prefix of every update this node trained.
func TrainedPrefix() Key { return Key(nsTrained) }

// PenaltyKey is the key of peer id's Penalty.
func PenaltyKey(id string) Key { return Key(nsPenalty + id) }

// PenaltyPrefix is the prefix of every Penalty.
func PenaltyPrefix() Key { return Key(nsPenalty) }

// PinKey is the key of the Pin of model id: its ciphertext is never collected.
func PinKey(id [32]byte) Key { return Key(nsPin + hex.EncodeToString(id[:])) }

// SecureKey is the key of this trainer's record of its part in secure round round.
func SecureKey(round string) Key { return Key(nsSecure + round) }

// CampaignKey is the key of a coordinator's campaign id.
func CampaignKey(id string) Key { return Key(nsCampaign + id) }

// CampaignPrefix is the prefix of every campaign.
func CampaignPrefix() Key { return Key(nsCampaign) }

// PayoutKey is the key of the reward for trainer's update in round.
func PayoutKey(round, trainer string) Key { return Key(nsPayout + round + "/" + trainer) }

// SecurePrefix is the prefix of every secure-round record of this trainer.
func SecurePrefix() Key { return Key(nsSecure) }

// PinPrefix is the prefix of every Pin.
func PinPrefix() Key { return Key(nsPin) }
