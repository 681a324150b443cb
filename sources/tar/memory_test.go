package tar_test

import (
	stdtar "archive/tar"
	"bytes"
	"context"
	"io"
	"runtime"
	"testing"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/tar"
)

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// bigArchive streams an archive holding one file of size zero bytes
// without ever holding it in memory.
func bigArchive(t *testing.T, size int64) io.Reader {
	t.Helper()
	var hdr bytes.Buffer
	w := stdtar.NewWriter(&hdr)
	if err := w.WriteHeader(&stdtar.Header{Name: "big", Mode: 0o644, Size: size, ModTime: t0}); err != nil {
		t.Fatal(err)
	}
	// The writer's Close would complain about the missing content: the
	// header is complete once written.
	return io.MultiReader(bytes.NewReader(hdr.Bytes()), io.LimitReader(zeros{}, size), bytes.NewReader(make([]byte, 2*blockSize)))
}

// discardVisitor reads every file to its end; with link set it takes hard
// links itself, so the source keeps no spool.
type discardVisitor struct {
	n    int64
	link bool
}

func (d *discardVisitor) Visit(ctx context.Context, e *sources.Entry) error {
	if e.Open == nil {
		return nil
	}
	rc, err := e.Open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	d.n += n
	return err
}

func (d *discardVisitor) LeaveDir(context.Context, string) error { return nil }

type linkDiscardVisitor struct{ discardVisitor }

func (*linkDiscardVisitor) VisitLink(context.Context, *sources.Entry, string) error { return nil }

// File content streams through: walking a large file allocates a small,
// fixed amount, whether or not the source keeps a spool for hard links
// (on disk).
func TestLargeFileStreams(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
		v    interface {
			sources.Visitor
			read() int64
		}
	}{
		{"LinkVisitor", 256 << 20, &linkDiscardVisitor{}},
		{"Spool", 64 << 20, &discardVisitor{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := tar.New(bigArchive(t, tc.size), tar.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if err := src.Walk(t.Context(), sources.WalkOptions{}, tc.v); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			if tc.v.read() != tc.size {
				t.Fatalf("read %d bytes, want %d", tc.v.read(), tc.size)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d MiB streamed, %d KiB allocated", tc.size>>20, alloc>>10)
			if alloc > 8<<20 {
				t.Errorf("walking a %d MiB file allocated %d MiB", tc.size>>20, alloc>>20)
			}
		})
	}
}

func (d *discardVisitor) read() int64 { return d.n }
