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
//
// Later features add namespaces (models, chunks, keys, payments, rounds, updates, reports) to this
// table. Multi-key updates go through Update, which runs one badger transaction: all of its writes
// land, or none do.
package store
