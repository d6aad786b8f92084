// Package store keeps a node's state in badger behind a small typed API.
//
// # Key schema
//
// Every key is "<namespace>/<id>" in ASCII; ids are lowercase hex or libp2p peer-ID strings, so
// a namespace is a key prefix that can be scanned. Values are deterministic CBOR of the node's own
// record types, never a wire or API type. The Schema table in schema.go is the one place the
// schema is written down: every namespace with its prefix, key layout, value type and owner, next
// to the key helpers; add a namespace there before using it.
//
// # Versions and migrations
//
// The store's schema version is kept at "meta/schema". Open upgrades an older datadir one
// version at a time through the steps in migrate.go, each in one transaction that also stamps the
// new version, and refuses a datadir written by a newer califusiond. A change to a record's CBOR
// or to a key layout bumps SchemaVersion and adds a step.
//
// # Files and durability
//
// Chunk ciphertext itself lives in store/blob files; a chunk counts as present only once its bit
// is set in "have", which happens after the blob is synced. Update files (safetensors) live in
// the datadir's rounds/ (coordinator) and updates/ (trainer) folders, written and synced before
// their record. Multi-key updates go through Update, which runs one badger transaction: all of its writes
// land, or none do.
package store
