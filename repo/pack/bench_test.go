package pack

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"testing"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo/blob"
)

// BenchmarkWriter assembles 16 MiB packs (restic's default size) of small
// sealed blobs, header included: the pack-side cost of a backup of tiny
// files, per blob.
func BenchmarkWriter(b *testing.B) {
	key := crypto.NewRandomKey()
	sealed := key.Seal(nil, make([]byte, 512))
	const perPack = 16 << 20 / 544
	ids := make([]blob.ID, perPack)
	for i := range ids {
		var seed [8]byte
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		ids[i] = sha256.Sum256(seed[:])
	}
	b.SetBytes(int64(len(sealed)))
	var w *Writer
	n := 0
	for b.Loop() {
		if w == nil || n == perPack {
			if w != nil {
				if _, err := w.Finalize(); err != nil {
					b.Fatal(err)
				}
			}
			w, n = NewWriter(io.Discard, key), 0
		}
		h := blob.Handle{ID: ids[n], Type: blob.DataBlob}
		if err := w.Add(h, sealed, 600); err != nil {
			b.Fatal(err)
		}
		n++
	}
}
