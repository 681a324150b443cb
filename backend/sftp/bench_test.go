package sftp_test

import (
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/internal/sshtest"
)

// BenchmarkTransfer measures saving and loading one 16 MiB pack (restic's
// default pack size) through the test sshd, with one request in flight per
// file (no pipelining) and with the default. Compare the ratio, not the
// absolute numbers: both ends share the machine's cores.
func BenchmarkTransfer(b *testing.B) {
	isolate(b)
	s := sshtest.Start(b)
	data := backendtest.Random(1, 16<<20)
	h := backendtest.HandleFor(backend.PackFile, data)
	for _, requests := range []int{1, 64} {
		cfg := config(b, s, filepath.Join(b.TempDir(), "repo"))
		cfg.RequestsPerFile = requests
		be := create(b, cfg)
		b.Run(fmt.Sprintf("Save/requests=%d", requests), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := be.Save(b.Context(), h, backend.NewByteReader(data, false)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("Load/requests=%d", requests), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				err := be.Load(b.Context(), h, 0, 0, func(rd io.Reader) error {
					_, err := io.Copy(io.Discard, rd)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("LoadReadAll/requests=%d", requests), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := backend.LoadAll(b.Context(), be, h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
