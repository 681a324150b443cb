package repo

import (
	"fmt"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo/blob"
)

// BlobStep names the step of opening a stored blob that failed.
type BlobStep string

// The steps of OpenBlob, in order.
const (
	BlobDecrypt    BlobStep = "decrypt"    // the MAC did not match (wrong key, damaged box)
	BlobDecompress BlobStep = "decompress" // bad zstd data, or not the indexed length
	BlobVerify     BlobStep = "verify"     // the plaintext does not hash to the blob's ID
)

// BlobError is the error of OpenBlob. Callers that word errors their own
// way (check uses restic's messages) take the step and cause from it.
type BlobError struct {
	Handle blob.Handle
	Step   BlobStep
	Err    error   // the cause, for BlobDecrypt and BlobDecompress
	Hash   blob.ID // for BlobVerify: what the plaintext hashes to
}

func (e *BlobError) Error() string {
	if e.Step == BlobVerify {
		return fmt.Sprintf("blob %v: wrong data returned, hash is %s", e.Handle, e.Hash.Str())
	}
	return fmt.Sprintf("%s blob %v: %v", e.Step, e.Handle, e.Err)
}

func (e *BlobError) Unwrap() error { return e.Err }

// OpenBlob turns the sealed bytes of blob h, as stored in a pack, into its
// plaintext: it checks the MAC and decrypts with the master key, decodes
// the zstd payload when uncompressedLen is not 0 (the index's uncompressed
// length; the decompressed size must equal it) and checks that the
// plaintext's SHA-256 is h.ID. The zstd decoder is shared with the rest of
// the repository and caps what one frame may allocate. Errors are
// *BlobError.
//
// Memory: the plaintext is written to dst's backing array when it has room
// (dst's length is ignored) and to new memory otherwise. An uncompressed
// blob that does not fit dst is decrypted in place and the result then
// shares sealed's memory. Either way sealed's contents are undefined
// afterwards: callers that need them again must pass a copy. dst must not
// overlap sealed.
func (r *Repository) OpenBlob(h blob.Handle, sealed []byte, uncompressedLen uint32, dst []byte) ([]byte, error) {
	var plain []byte
	var err error
	if uncompressedLen == 0 && cap(dst) >= len(sealed)-crypto.Overhead {
		// Straight into dst: decrypting in place would first move the
		// whole ciphertext down by the IV's length.
		plain, err = r.key.Open(dst[:0], sealed)
	} else {
		plain, err = r.key.OpenInPlace(sealed)
	}
	if err != nil {
		return nil, &BlobError{Handle: h, Step: BlobDecrypt, Err: err}
	}
	if uncompressedLen != 0 {
		if cap(dst) < int(uncompressedLen) {
			dst = make([]byte, 0, uncompressedLen)
		}
		out, err := zstdDecoder().DecodeAll(plain, dst[:0])
		if err != nil {
			return nil, &BlobError{Handle: h, Step: BlobDecompress, Err: err}
		}
		if len(out) != int(uncompressedLen) {
			return nil, &BlobError{Handle: h, Step: BlobDecompress,
				Err: fmt.Errorf("decompressed to %d bytes, index says %d", len(out), uncompressedLen)}
		}
		plain = out
	}
	if got := blob.Hash(plain); got != h.ID {
		return nil, &BlobError{Handle: h, Step: BlobVerify, Hash: got}
	}
	return plain, nil
}
