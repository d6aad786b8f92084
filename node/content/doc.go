// Package content packages models for CaliFusion: it cuts a file into chunks, seals each chunk
// with AES-256-GCM under the model's content key, builds an RFC 6962-style SHA-256 Merkle tree over
// the ciphertext, and describes the result in a signed, canonical-CBOR manifest whose SHA-256 is
// the ModelID. It is pure (no I/O beyond the readers and writers it is given) and streaming:
// memory is O(chunk size × workers), never O(file).
//
// Chunk i (0-based, n chunks) of a model with salt S and key K is
//
//	ct_i = AES-256-GCM-Seal(K, nonce = 0x00000000 ‖ uint64be(i), pt_i,
//	                         aad = "califusion/chunk/v1" ‖ S ‖ uint64be(i) ‖ uint64be(n))
//
// so a chunk cannot be moved to another index, another model or a truncated model. Leaves are
// SHA-256(0x00 ‖ ct_i), inner nodes SHA-256(0x01 ‖ left ‖ right), split at the largest power of two
// below the leaf count (RFC 6962 §2.1); an empty model has the root SHA-256("").
//
// The key commitment SHA-256("califusion/key/v1" ‖ K) lets anyone holding K prove it is the key
// the publisher used, without revealing it.
package content
