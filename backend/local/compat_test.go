package local_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/internal/oracle"
)

// listTypes is every type that List accepts.
var listTypes = []backend.FileType{backend.KeyFile, backend.LockFile, backend.SnapshotFile, backend.IndexFile, backend.PackFile}

// diskNames returns the names of the regular files restic's layout puts
// type ft in, found by walking the directory independently of List.
func diskNames(t *testing.T, repo string, ft backend.FileType) []string {
	t.Helper()
	var names []string
	root := filepath.Join(repo, ft.Dir())
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && backend.IsValidName(d.Name()) {
			names = append(names, d.Name())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// checkReadsAll lists every type of repo through be, compares the names with
// the directory tree, and checks that every file hashes to its name.
func checkReadsAll(t *testing.T, be *local.Backend) map[backend.FileType][]string {
	t.Helper()
	out := make(map[backend.FileType][]string)
	for _, ft := range listTypes {
		var names []string
		err := be.List(t.Context(), ft, func(fi backend.FileInfo) error {
			names = append(names, fi.Name)
			h := backend.Handle{Type: ft, Name: fi.Name}
			return be.Load(t.Context(), h, 0, 0, func(rd io.Reader) error {
				sum := sha256.New()
				n, err := io.Copy(sum, rd)
				if err != nil {
					return err
				}
				if got := hex.EncodeToString(sum.Sum(nil)); got != fi.Name {
					t.Errorf("%v: content hashes to %s", h, got)
				}
				if n != fi.Size {
					t.Errorf("%v: List says %d bytes, Load read %d", h, fi.Size, n)
				}
				return nil
			})
		})
		if err != nil {
			t.Fatalf("List(%v): %v", ft, err)
		}
		slices.Sort(names)
		if want := diskNames(t, be.Location(), ft); !slices.Equal(names, want) {
			t.Errorf("List(%v) = %v, but the directory holds %v", ft, names, want)
		}
		out[ft] = names
	}
	if len(out[backend.KeyFile]) == 0 || len(out[backend.PackFile]) == 0 || len(out[backend.SnapshotFile]) == 0 {
		t.Fatalf("restic's repository lists as %v: keys, packs or snapshots missing", out)
	}
	return out
}

// copyRepo copies every file of src into dst through the backend API; packs
// go through a FileReader, as pack uploads do.
func copyRepo(t *testing.T, src, dst *local.Backend) {
	t.Helper()
	tmp := t.TempDir()
	copyOne := func(h backend.Handle) {
		data, err := backend.LoadAll(t.Context(), src, h)
		if err != nil {
			t.Fatal(err)
		}
		var rd backend.RewindReader = backend.NewByteReader(data, false)
		if h.Type == backend.PackFile {
			f, err := os.CreateTemp(tmp, "pack-")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			rd = backend.NewFileReader(f, int64(len(data)), nil)
		}
		if err := dst.Save(t.Context(), h, rd); err != nil {
			t.Fatal(err)
		}
	}
	// Packs first, then index, snapshots and keys, config last: the order a
	// writer must use so a reader never meets a dangling reference.
	for _, ft := range backend.AllTypes {
		if ft == backend.LockFile {
			continue
		}
		err := src.List(t.Context(), ft, func(fi backend.FileInfo) error {
			copyOne(backend.Handle{Type: ft, Name: fi.Name})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	copyOne(backend.Handle{Type: backend.ConfigFile})
}

// TestResticCompatibility checks both directions against restic 0.19.1:
// cairn lists and reads a repository restic wrote, restic checks a copy
// cairn wrote (read-data) and keeps writing to it, and cairn reads that.
func TestResticCompatibility(t *testing.T) {
	r := oracle.New(t).WithEnv("RESTIC_HOST=cairn-local-test")
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"big.bin":   backendtest.Random(1, 5<<20),
		"small.txt": []byte("hello"),
		"sub/x":     backendtest.Random(2, 70<<10),
	} {
		if err := os.WriteFile(filepath.Join(src, filepath.FromSlash(name)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	resticRepo := filepath.Join(tmp, "restic-repo")
	r.Init(resticRepo, 2)
	first := r.Backup(resticRepo, []string{src})
	rb, err := local.Open(t.Context(), resticRepo)
	if err != nil {
		t.Fatal(err)
	}
	checkReadsAll(t, rb)

	cairnRepo := filepath.Join(tmp, "cairn-repo")
	cb, err := local.Create(t.Context(), cairnRepo)
	if err != nil {
		t.Fatal(err)
	}
	copyRepo(t, rb, cb)
	r.MustCheck(cairnRepo, true)
	if snaps := r.Snapshots(cairnRepo); len(snaps) != 1 || snaps[0].ID != first.SnapshotID {
		t.Fatalf("restic sees snapshots %+v in cairn's copy, want %s", snaps, first.SnapshotID)
	}

	// restic writes into the directory cairn laid out; cairn reads the result.
	if err := os.WriteFile(filepath.Join(src, "new.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := r.Backup(cairnRepo, []string{src})
	got := checkReadsAll(t, cb)
	if !slices.Contains(got[backend.SnapshotFile], second.SnapshotID) || len(got[backend.SnapshotFile]) != 2 {
		t.Fatalf("cairn lists snapshots %v after restic's second backup %s", got[backend.SnapshotFile], second.SnapshotID)
	}
	r.MustCheck(cairnRepo, true)
}
