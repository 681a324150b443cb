package tar_test

import (
	stdtar "archive/tar"
	"bytes"
	"context"
	"io"
	"path"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/tar"
)

// FuzzTar feeds arbitrary bytes to the source: it must never panic, never
// visit a path outside the snapshot root or before its directory, and
// never report success for a stream without an end-of-archive marker.
func FuzzTar(f *testing.F) {
	for _, format := range []stdtar.Format{stdtar.FormatUSTAR, stdtar.FormatPAX, stdtar.FormatGNU} {
		f.Add(archive(f,
			member{hdr: stdtar.Header{Name: "d/", Typeflag: stdtar.TypeDir, Mode: 0o755, ModTime: t0, Format: format}},
			member{hdr: stdtar.Header{Name: "d/f", Typeflag: stdtar.TypeReg, Mode: 0o644, Size: 5, ModTime: t0, Format: format}, data: "hello"},
			member{hdr: stdtar.Header{Name: "d/l", Typeflag: stdtar.TypeLink, Linkname: "d/f", ModTime: t0, Format: format}},
			member{hdr: stdtar.Header{Name: "d/s", Typeflag: stdtar.TypeSymlink, Linkname: "f", ModTime: t0, Format: format}},
			member{hdr: stdtar.Header{Name: "d/c", Typeflag: stdtar.TypeChar, Devmajor: 1, Devminor: 3, ModTime: t0, Format: format}},
		))
	}
	f.Add(archive(f, member{hdr: stdtar.Header{Name: strings.Repeat("long/", 80) + "x", Typeflag: stdtar.TypeReg, Size: 1,
		PAXRecords: map[string]string{"SCHILY.xattr.user.a": "1", "LIBARCHIVE.xattr.user.b": "Mg=="}, ModTime: t0}, data: "x"}))
	f.Add(archive(f, file("../up", "x"), file("./a/../b", "y"), hardlink("c", "../up")))
	f.Add([]byte{})
	f.Add(make([]byte, 1024))
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := tar.New(bytes.NewReader(data), tar.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		seen := map[string]bool{"": true}
		v := &fuzzVisitor{t: t, seen: seen}
		err = src.Walk(context.Background(), sources.WalkOptions{OnError: func(string, error) error { return nil }}, v)
		if err == nil && len(data) < 2*blockSize {
			// At least one zero block after at least one header... or
			// the marker alone (1024 bytes) is the shortest archive.
			if len(data) < blockSize {
				t.Fatalf("%d bytes accepted as a whole archive", len(data))
			}
		}
	})
}

type fuzzVisitor struct {
	t    *testing.T
	seen map[string]bool
}

func (v *fuzzVisitor) Visit(ctx context.Context, e *sources.Entry) error {
	p := e.Path
	if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") {
		v.t.Fatalf("visited unsafe path %q", p)
	}
	if dir := path.Dir(p); dir != "." && !v.seen[dir] {
		v.t.Fatalf("%q visited before its directory", p)
	}
	if e.Type == sources.Dir {
		v.seen[p] = true
	}
	if e.Open != nil {
		rc, err := e.Open(ctx)
		if err == nil {
			_, _ = io.Copy(io.Discard, rc)
			rc.Close()
		}
	}
	return nil
}

func (v *fuzzVisitor) LeaveDir(context.Context, string) error { return nil }
