package local_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/local"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newRepo(t)
	})
}

// newRepo creates a repository in a fresh directory.
func newRepo(t *testing.T) *local.Backend {
	t.Helper()
	be, err := local.Create(t.Context(), filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return be
}

func save(t *testing.T, be backend.Backend, h backend.Handle, data []byte) {
	t.Helper()
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
		t.Fatalf("Save(%v): %v", h, err)
	}
}

// files returns every regular file below dir, relative and slash-separated.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestCreateLayout(t *testing.T) {
	be := newRepo(t)
	for _, d := range backend.Dirs(be.Location()) {
		if got := mode(t, d); got != 0o700 {
			t.Errorf("%s has mode %o, want 700", d, got)
		}
	}
	if fs := files(t, be.Location()); len(fs) != 0 {
		t.Errorf("a new repository holds files: %v", fs)
	}
	// A second Create on the same layout is fine until there is a config.
	if _, err := local.Create(t.Context(), be.Location()); err != nil {
		t.Fatalf("Create on an existing layout without config: %v", err)
	}
	save(t, be, backend.Handle{Type: backend.ConfigFile}, []byte("cfg"))
	if _, err := local.Create(t.Context(), be.Location()); err == nil {
		t.Fatal("Create over an existing config succeeded")
	}
}

// TestFilesInResticLayout checks where each type lands and its final mode.
func TestFilesInResticLayout(t *testing.T) {
	be := newRepo(t)
	want := []string{"config"}
	for i, ft := range []backend.FileType{backend.ConfigFile, backend.KeyFile, backend.LockFile,
		backend.SnapshotFile, backend.IndexFile, backend.PackFile} {
		data := backendtest.Random(uint64(i), 100)
		h := backendtest.HandleFor(ft, data)
		save(t, be, h, data)
		p := filepath.Join(be.Location(), filepath.FromSlash(backend.Path("", h)))
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%v is not stored at %s: %v", h, p, err)
		}
		if m := mode(t, p); m != 0o400 {
			t.Errorf("%s has mode %o, want 400", p, m)
		}
		if ft == backend.PackFile {
			want = append(want, "data/"+h.Name[:2]+"/"+h.Name)
		} else if ft != backend.ConfigFile {
			want = append(want, ft.Dir()+"/"+h.Name)
		}
	}
	got := files(t, be.Location())
	if len(got) != len(want) {
		t.Fatalf("repository holds %v, want exactly %v (no temporary files)", got, want)
	}
}

// TestGroupModes checks restic's rule: a group-readable config makes new
// directories 0770 and files 0440.
func TestGroupModes(t *testing.T) {
	dir := newRepo(t).Location()
	cfg := filepath.Join(dir, "config")
	if err := os.WriteFile(cfg, []byte("cfg"), 0o440); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg, 0o440); err != nil {
		t.Fatal(err)
	}
	be, err := local.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	data := backendtest.Random(1, 100)
	h := backendtest.HandleFor(backend.KeyFile, data)
	save(t, be, h, data)
	if m := mode(t, filepath.Join(dir, "keys", h.Name)); m != 0o440 {
		t.Errorf("key file has mode %o in a group repository, want 440", m)
	}
	// A missing data/XX is created with group access (minus the umask).
	pack := backendtest.HandleFor(backend.PackFile, data)
	sub := filepath.Join(dir, "data", pack.Name[:2])
	if err := os.Remove(sub); err != nil {
		t.Fatal(err)
	}
	save(t, be, pack, data)
	if m := mode(t, sub); m&0o050 != 0o050 || m&0o007 != 0 {
		t.Errorf("recreated %s has mode %o, want group read and search, nothing for others", sub, m)
	}
}

func TestOpen(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := local.Open(t.Context(), missing)
	if !errors.Is(err, backend.ErrNoRepository) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want ErrNoRepository and fs.ErrNotExist", err)
	}
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Open(missing) = %v, want the path in the error", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Open(t.Context(), file); err == nil {
		t.Error("Open of a regular file succeeded")
	}
	if _, err := local.Open(t.Context(), ""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	be := newRepo(t)
	if _, err := local.Open(t.Context(), be.Location()); err != nil {
		t.Errorf("Open of a created repository: %v", err)
	}
}

// TestMissingDirectories checks that directories are made on demand and
// that listing tolerates their absence, as with layouts made by other tools.
func TestMissingDirectories(t *testing.T) {
	be := newRepo(t)
	for _, d := range []string{"data", "keys"} {
		if err := os.RemoveAll(filepath.Join(be.Location(), d)); err != nil {
			t.Fatal(err)
		}
	}
	for _, ft := range []backend.FileType{backend.PackFile, backend.KeyFile} {
		n := 0
		if err := be.List(t.Context(), ft, func(backend.FileInfo) error { n++; return nil }); err != nil || n != 0 {
			t.Fatalf("List(%v) of a missing directory = %d files, %v; want none and no error", ft, n, err)
		}
		data := backendtest.Random(uint64(ft), 50)
		h := backendtest.HandleFor(ft, data)
		save(t, be, h, data)
		got, err := backend.LoadAll(t.Context(), be, h)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Load(%v) after its directory was recreated: %v", h, err)
		}
	}
}

// TestListSkipsForeignEntries puts temporary files, junk and misplaced
// entries next to real files.
func TestListSkipsForeignEntries(t *testing.T) {
	be := newRepo(t)
	dir := be.Location()
	key := backendtest.HandleFor(backend.KeyFile, []byte("key"))
	save(t, be, key, []byte("key"))
	pack := backendtest.HandleFor(backend.PackFile, []byte("pack"))
	save(t, be, pack, []byte("pack"))
	other := backendtest.HandleFor(backend.PackFile, []byte("other")).Name
	junk := map[string]bool{
		"keys/" + key.Name + "-tmp-12345":               false,
		"keys/README":                                   false,
		"keys/" + strings.ToUpper(other):                false,
		"keys/" + other[:63]:                            false,
		"data/" + other:                                 false, // packs live in data/XX only
		"data/" + pack.Name[:2] + "/" + other + "-tmp-": false,
		"keys/" + other + "/x":                          true, // a directory with a valid name
	}
	for p, isDir := range junk {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if isDir {
			if err := os.MkdirAll(full, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		ft   backend.FileType
		want string
	}{{backend.KeyFile, key.Name}, {backend.PackFile, pack.Name}} {
		var got []string
		if err := be.List(t.Context(), c.ft, func(fi backend.FileInfo) error { got = append(got, fi.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("List(%v) = %v, want only %s", c.ft, got, c.want)
		}
	}
}

// failReader fails with errBroken after half of its data.
type failReader struct {
	data []byte
	pos  int
}

var errBroken = errors.New("source broke")

func (r *failReader) Read(p []byte) (int, error) {
	if r.pos >= len(r.data)/2 {
		return 0, errBroken
	}
	n := copy(p, r.data[r.pos:len(r.data)/2])
	r.pos += n
	return n, nil
}
func (r *failReader) Rewind() error { r.pos = 0; return nil }
func (r *failReader) Length() int64 { return int64(len(r.data)) }
func (r *failReader) Hash() []byte  { return nil }

// TestFailedSaveLeavesNothing checks that the temporary file is gone after
// each kind of failure, and that an existing file survives a failed replace.
func TestFailedSaveLeavesNothing(t *testing.T) {
	be := newRepo(t)
	old := []byte("old config")
	save(t, be, backend.Handle{Type: backend.ConfigFile}, old)
	data := backendtest.Random(2, 3<<20)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		h    backend.Handle
		rd   backend.RewindReader
		is   error
	}{
		{"reader fails", t.Context(), backendtest.HandleFor(backend.PackFile, data), &failReader{data: data}, errBroken},
		{"reader fails on config", t.Context(), backend.Handle{Type: backend.ConfigFile}, &failReader{data: data}, errBroken},
		{"cancelled", ctx, backendtest.HandleFor(backend.IndexFile, data), backend.NewByteReader(data, false), context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := be.Save(tc.ctx, tc.h, tc.rd)
			if !errors.Is(err, tc.is) {
				t.Fatalf("Save = %v, want an error wrapping %v", err, tc.is)
			}
			p := filepath.Join(be.Location(), filepath.FromSlash(backend.Path("", tc.h)))
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
			if got := files(t, be.Location()); len(got) != 1 || got[0] != "config" {
				t.Fatalf("after a failed Save the repository holds %v, want only the old config", got)
			}
			if got, _ := os.ReadFile(filepath.Join(be.Location(), "config")); !bytes.Equal(got, old) {
				t.Fatalf("a failed Save changed the existing config")
			}
		})
	}
}

func TestHostileNamesStayInside(t *testing.T) {
	parent := t.TempDir()
	be, err := local.Create(t.Context(), filepath.Join(parent, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../../escaped", "../escaped", "..", "a/../../../escaped"} {
		h := backend.Handle{Type: backend.PackFile, Name: name}
		if err := be.Save(t.Context(), h, backend.NewByteReader([]byte("x"), false)); err == nil {
			t.Errorf("Save with name %q succeeded", name)
		}
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("files appeared next to the repository: %v", entries)
	}
}

// TestLoadShrinkingFile truncates a file while fn reads it: the read must
// fail with ErrShortRead instead of ending early without an error, through
// Read and through the WriteTo path that io.Copy into a file takes.
func TestLoadShrinkingFile(t *testing.T) {
	be := newRepo(t)
	data := backendtest.Random(3, 1<<20)
	h := backendtest.HandleFor(backend.PackFile, data)
	p := filepath.Join(be.Location(), filepath.FromSlash(backend.Path("", h)))
	for _, viaCopy := range []bool{false, true} {
		save(t, be, h, data)
		// Writable again, so that the test also works without root.
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		err := be.Load(t.Context(), h, 0, 1000, func(rd io.Reader) error {
			if err := os.Truncate(p, 500<<10); err != nil {
				t.Fatal(err)
			}
			if viaCopy {
				f, err := os.Create(filepath.Join(t.TempDir(), "copy"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				_, err = io.Copy(f, rd)
				return err
			}
			_, err := io.ReadAll(rd)
			return err
		})
		if !errors.Is(err, backend.ErrShortRead) {
			t.Errorf("Load of a file truncated during the read (io.Copy to a file: %v) = %v, want ErrShortRead", viaCopy, err)
		}
	}
}

// TestLoadCopyToFile checks the WriteTo path for content and range.
func TestLoadCopyToFile(t *testing.T) {
	be := newRepo(t)
	data := backendtest.Random(4, 2<<20+5)
	h := backendtest.HandleFor(backend.PackFile, data)
	save(t, be, h, data)
	out := filepath.Join(t.TempDir(), "out")
	err := be.Load(t.Context(), h, 1<<20, 12345, func(rd io.Reader) error {
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
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, data[12345:12345+1<<20]) {
		t.Fatalf("io.Copy of a ranged Load into a file gave %d bytes (%v), want the range", len(got), err)
	}
}
