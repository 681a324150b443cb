package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dump prints a file byte for byte as restic does, and writes the same tar
// and zip archives: the very same bytes, and so the same entries.
func TestDumpLikeRestic(t *testing.T) {
	t.Parallel()
	f := inspectFixture(t)
	x := newInspectRun(t, f.v2)
	s0, s1, s2 := f.v2IDs[0], f.v2IDs[1], f.v2IDs[2]

	for _, p := range []string{"files/random.bin", "files/sparse.img", "files/tiny", "hardlinks/b", "many/f00000", "names/new\nline", "names/bad\xffutf8"} {
		out := x.same("dump", s0, f.src+"/"+p)
		if p == "files/random.bin" || p == "files/tiny" {
			// Unchanged since the first snapshot: the source file holds it.
			want, err := os.ReadFile(filepath.Join(f.src, p))
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Errorf("dump %s: %d bytes, want the %d of the file", p, len(out), len(want))
			}
		}
	}

	// Archives, whole snapshots and subfolders; cairn's own snapshot too.
	for _, args := range [][]string{
		{"dump", s0, f.src + "/names"},
		{"dump", s0, f.src + "/xattrs"},
		{"dump", s0, f.src + "/links"},
		{"dump", s0 + ":" + f.src + "/special", "/"},
		{"dump", s1 + ":" + f.src, "/"},
		{"dump", "--host", "h1", "latest", f.src + "/hardlinks"},
		{"dump", s2, "/"},
		{"dump", "--archive", "zip", s0, f.src + "/names"},
		{"dump", "-a", "zip", s1 + ":" + f.src, "/"},
	} {
		c, o := x.both(args...)
		if c.code != 0 {
			t.Fatalf("%s", c)
		}
		if c.stdout != string(o.Stdout) {
			t.Errorf("%v: archives differ (%d bytes from cairn, %d from restic)", args, len(c.stdout), len(o.Stdout))
		}
		if !strings.Contains(strings.Join(args, " "), "zip") {
			compareTars(t, []byte(c.stdout), o.Stdout)
		}
		if len(c.stdout) < 1024 {
			t.Errorf("%v: only %d bytes", args, len(c.stdout))
		}
	}
	// A version 1 repository (uncompressed blobs) gives the same archive.
	newInspectRun(t, f.v1).same("dump", f.v1ID, "/")

	// The archive holds what was backed up.
	c, _ := x.both("dump", s0, f.src+"/files")
	entries := tarEntries(t, []byte(c.stdout))
	want, err := os.ReadFile(filepath.Join(f.src, "files/random.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if got := entries[strings.TrimPrefix(f.src, "/")+"/files/random.bin"]; got.content != string(want) {
		t.Errorf("random.bin in the tar: %d bytes, want %d", len(got.content), len(want))
	}
	zc, _ := x.both("dump", "-a", "zip", s0, f.src+"/files")
	zr, err := zip.NewReader(bytes.NewReader([]byte(zc.stdout)), int64(len(zc.stdout)))
	if err != nil {
		t.Fatalf("cairn's zip: %v", err)
	}
	if len(zr.File) < 5 {
		t.Errorf("zip has %d entries", len(zr.File))
	}

	// --target writes the same file.
	mine, theirs := filepath.Join(t.TempDir(), "c.tar"), filepath.Join(t.TempDir(), "r.tar")
	x.r.ok("-r", f.v2, "--no-lock", "dump", "--target", mine, s0, f.src+"/owners")
	x.o.MustRun(f.v2, "--no-lock", "dump", "--target", theirs, s0, f.src+"/owners")
	a, err1 := os.ReadFile(mine)
	b, err2 := os.ReadFile(theirs)
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) || len(a) == 0 {
		t.Errorf("--target files differ (%v, %v): %d and %d bytes", err1, err2, len(a), len(b))
	}

	for _, args := range [][]string{
		{"dump", s0},
		{"dump", s0, f.src + "/missing"},
		{"dump", s0, f.src + "/links/relative"},
		{"dump", s0, f.src + "/files/tiny/below"},
		{"dump", "-a", "rar", s0, "/"},
		{"dump", "--host", "nohost", "latest", "/"},
	} {
		if c, _ := x.both(args...); c.code != 1 || c.stdout != "" {
			t.Errorf("%v: want exit 1 and no output: %s", args, c)
		}
	}
}

type tarEntry struct {
	hdr     tar.Header
	content string
}

// tarEntries reads a tar stream into its entries by name.
func tarEntries(t *testing.T, data []byte) map[string]tarEntry {
	t.Helper()
	out := map[string]tarEntry{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read tar entry %s: %v", h.Name, err)
		}
		out[h.Name] = tarEntry{hdr: *h, content: string(body)}
	}
}

// compareTars reports, entry by entry, how two tar streams differ.
func compareTars(t *testing.T, mine, theirs []byte) {
	t.Helper()
	a, b := tarEntries(t, mine), tarEntries(t, theirs)
	for name, e := range b {
		m, ok := a[name]
		switch {
		case !ok:
			t.Errorf("tar: %q missing", name)
		case m.hdr.Mode != e.hdr.Mode || m.hdr.Typeflag != e.hdr.Typeflag || m.hdr.Size != e.hdr.Size ||
			m.hdr.Uid != e.hdr.Uid || m.hdr.Gid != e.hdr.Gid || m.hdr.Linkname != e.hdr.Linkname ||
			!m.hdr.ModTime.Equal(e.hdr.ModTime) || m.hdr.Uname != e.hdr.Uname || m.hdr.Gname != e.hdr.Gname ||
			!maps.Equal(m.hdr.PAXRecords, e.hdr.PAXRecords):
			t.Errorf("tar: %q header differs:\ncairn  %+v\nrestic %+v", name, m.hdr, e.hdr)
		case m.content != e.content:
			t.Errorf("tar: %q content differs", name)
		}
	}
	for name := range a {
		if _, ok := b[name]; !ok {
			t.Errorf("tar: %q extra", name)
		}
	}
}
