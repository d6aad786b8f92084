// Package store keeps a node's state in badger behind a small typed API.
//
// # Key schema
//
// Every key is "<namespace>/<id>" in ASCII; ids are lowercase hex or libp2p peer-ID strings, so
// a namespace is a key prefix that can be scanned. Values are deterministic CBOR of the record type
// named below. This table is the one place the schema is written down; add a namespace here
// before using it.
//
//	namespace     id                 value                       written by
//	meta          "schema"           uint64 schema version       Open
//	peer          peer ID            PeerRecord (last addrs)     node, on every new connection
//	presence      peer ID            Presence (roles, version)   node, on a valid presence message
//	job           job ID (hex)       jobs.Status                 node/jobs, on start, progress, end
//	model         ModelID (hex)      ModelRecord (signed manifest) node, on publish / valid announcement
//	leaves        ModelID (hex)      []byte, 32-byte leaf hashes  node, once checked against the root
//	have          ModelID (hex)      Bitmap of durable chunks     node, after the blob file is synced
//	key           ModelID (hex)      content key, AES-GCM-wrapped node keyring (publisher, unlock)
//	payment       ledger/block       PaymentRecord (consumer)     coordinator, in the grant txn
//	grant         lineage/peer ID    Grant (which block paid)     coordinator, in the same txn
//	paid          ledger/lineage/payer Paid (outgoing payment)    payer, before the transfer, then with its block
//	round         round ID (hex)     announce.Round               coordinator (authoritative), others from gossip
//	update        round/peer ID      node update record           coordinator, once an update is verified
//	report        round ID           adminrpc.RoundReport         coordinator, when the round ends
//	trained       update ID (hex)    node trained-update record   trainer, after a hook run
//	penalty       peer ID            Penalty (bad data served)    node, when a fetch drops a provider for bad data
//
// Chunk ciphertext itself lives in store/blob files; a chunk counts as present only once its bit
// is set in "have", which happens after the blob is synced. Update files (safetensors) live in
// the datadir's rounds/ (coordinator) and updates/ (trainer) folders, written and synced before
// their record. Multi-key updates go through Update, which runs one badger transaction: all of its writes
// land, or none do.
package store
