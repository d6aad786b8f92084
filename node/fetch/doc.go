// Package fetch moves model ciphertext: it keeps models' chunks on disk (ChunkStore), serves
// them to peers, and fetches a model from many providers in one pipeline (resolve → anchor check
// → leaves → chunks → chunk store → provide); it also decrypts a complete, unlocked model.
package fetch
