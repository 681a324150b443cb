package repo

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/repo/blob"
)

// benchChunks returns n distinct 1 MiB chunks: text-like (compresses about
// 3:1, like source code and logs) or random (incompressible).
func benchChunks(n int, text bool) [][]byte {
	words := []string{"backup ", "restore ", "snapshot ", "func ", "return ", "err ", "nil ", "if ", "the ", "of ",
		"INFO ", "WARN ", "request ", "completed ", "latency_ms=", "0x1f ", "\n", "{ ", "} ", ":= "}
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, 0, 1<<20)
		for len(b) < 1<<20 {
			if text {
				b = append(b, words[rng.IntN(len(words))]...)
			} else {
				b = binary.LittleEndian.AppendUint64(b, rng.Uint64())
			}
		}
		out[i] = b[:1<<20]
	}
	return out
}

// BenchmarkBlobWriter measures what the backup pipeline's blob workers
// spend per chunk in the repository: compression, sealing, pack assembly,
// pack hashing and the upload to a local backend, with one saver per core
// (as the pipeline runs them). The chunk IDs are computed outside the timer.
func BenchmarkBlobWriter(b *testing.B) {
	for _, kind := range []string{"text", "random"} {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			be, err := local.Open(ctx, b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			r, err := Init(ctx, be, "secret", InitOptions{Version: 2, Key: testKey}, Options{TempDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			chunks := benchChunks(64, kind == "text")
			w, err := r.NewBlobWriter(ctx)
			if err != nil {
				b.Fatal(err)
			}
			var seq atomic.Int64
			b.SetBytes(1 << 20)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					data := chunks[i%int64(len(chunks))]
					// A distinct ID per call so that nothing deduplicates;
					// the pack does not care whether it is the data's hash.
					id := blob.ID(sha256.Sum256(fmt.Appendf(nil, "chunk %d", i)))
					if _, err := w.SaveBlob(ctx, blob.DataBlob, data, id); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := w.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}
