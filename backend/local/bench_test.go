package local_test

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/local"
)

// packSize is the size of the packs in the benchmarks: restic's default
// pack size.
const packSize = 16 << 20

func benchRepo(b *testing.B) *local.Backend {
	b.Helper()
	be, err := local.Create(b.Context(), filepath.Join(b.TempDir(), "repo"))
	if err != nil {
		b.Fatal(err)
	}
	return be
}

// BenchmarkSave measures an atomic, fsynced 16 MiB pack write from memory
// and from a file (the copy_file_range path).
func BenchmarkSave(b *testing.B) {
	data := backendtest.Random(1, packSize)
	b.Run("memory", func(b *testing.B) {
		be := benchRepo(b)
		b.SetBytes(packSize)
		i := 0
		for b.Loop() {
			h := backend.Handle{Type: backend.PackFile, Name: benchName(i)}
			if err := be.Save(b.Context(), h, backend.NewByteReader(data, false)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	// baseline is the least any durable atomic write costs: write, fsync,
	// rename, without preallocation, modes or the directory fsync. Compare
	// "memory" with it to see the backend's overhead.
	b.Run("baseline", func(b *testing.B) {
		dir := b.TempDir()
		b.SetBytes(packSize)
		i := 0
		for b.Loop() {
			f, err := os.CreateTemp(dir, "tmp-")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Write(data); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			if err := os.Rename(f.Name(), filepath.Join(dir, benchName(i))); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("file", func(b *testing.B) {
		be := benchRepo(b)
		f, err := os.Create(filepath.Join(b.TempDir(), "pack"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(data); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(packSize)
		i := 0
		for b.Loop() {
			h := backend.Handle{Type: backend.PackFile, Name: benchName(i)}
			if err := be.Save(b.Context(), h, backend.NewFileReader(f, packSize, nil)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkLoad measures reading a 16 MiB pack into memory, and copying it
// into a file (the WriteTo path).
func BenchmarkLoad(b *testing.B) {
	data := backendtest.Random(2, packSize)
	be := benchRepo(b)
	h := backendtest.HandleFor(backend.PackFile, data)
	if err := be.Save(b.Context(), h, backend.NewByteReader(data, false)); err != nil {
		b.Fatal(err)
	}
	b.Run("memory", func(b *testing.B) {
		buf := make([]byte, packSize)
		b.SetBytes(packSize)
		for b.Loop() {
			err := be.Load(b.Context(), h, 0, 0, func(rd io.Reader) error {
				_, err := io.ReadFull(rd, buf)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("file", func(b *testing.B) {
		out := filepath.Join(b.TempDir(), "out")
		b.SetBytes(packSize)
		for b.Loop() {
			err := be.Load(b.Context(), h, 0, 0, func(rd io.Reader) error {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				if _, err := io.Copy(f, rd); err != nil {
					_ = f.Close()
					return err
				}
				return f.Close()
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchName returns a distinct valid pack name per iteration, spread over
// the data/XX directories like real pack names.
func benchName(i int) string {
	return backendtest.HandleFor(backend.PackFile, []byte{byte(i), byte(i >> 8), byte(i >> 16)}).Name
}
