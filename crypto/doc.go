// Package crypto implements restic's authenticated encryption and key
// derivation.
//
// Every encrypted object in a repository is a "sealed box":
//
//	IV (16 bytes) || AES-256-CTR(plaintext) || Poly1305-AES MAC (16 bytes)
//
// The MAC covers only the ciphertext; the IV enters it through the
// Poly1305-AES nonce s = AES-128_k(IV). A Key holds the 64 bytes of key
// material (encryption key, MAC k, MAC r). User keys are derived from a
// password with scrypt (KDF); the repository's master key is random and
// stored in key files, sealed with a user key.
package crypto
