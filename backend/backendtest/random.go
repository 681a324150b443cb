package backendtest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"

	"github.com/cairn-backup/cairn/backend"
)

// Random returns n pseudo-random bytes that depend only on seed, so a failing
// test can be rerun with exactly the same data. The bytes are incompressible,
// which keeps compression from hiding size bugs.
func Random(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	// A fixed tag in the rest of the key keeps these streams distinct from
	// any other ChaCha8 use that seeds with small integers.
	copy(key[8:], "cairn/backendtest/random")
	buf := make([]byte, n)
	// ChaCha8.Read never fails.
	_, _ = rand.NewChaCha8(key).Read(buf)
	return buf
}

// HandleFor returns the handle restic would store data under: the config
// handle for backend.ConfigFile, otherwise a handle named by the lowercase
// hex SHA-256 of data.
func HandleFor(t backend.FileType, data []byte) backend.Handle {
	if t == backend.ConfigFile {
		return backend.Handle{Type: t}
	}
	sum := sha256.Sum256(data)
	return backend.Handle{Type: t, Name: hex.EncodeToString(sum[:])}
}
