// Package keys keeps and moves the content keys of models:
//
//   - Keyring stores content keys wrapped at rest under the node's master key.
//   - Coordinator answers the keys protocol (protocols/keys) on a coordinator: it keeps a
//     publisher's deposited key once it matches the manifest, releases a key against a payment it
//     verified on the ledger (recorded as consumed in the same transaction that grants it), and
//     tells a trainer before it pays whether it holds a key.
//   - Client is the publisher's and the trainer's side: Escrow deposits a published model's key
//     with the coordinators its lineage root names; Pay pays for a lineage at most once (a payment
//     started and not confirmed is re-sent as the same transaction); Unlock pays if needed and
//     asks a coordinator for the key; Claim asks for a key the node is entitled to already.
//
// Lifecycle: NewCoordinator builds, Start registers the handlers on the kex server, Close removes
// them. The Client starts no goroutines.
package keys
