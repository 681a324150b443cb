//go:build linux

package backup_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backup"
	"github.com/cairn-backup/cairn/sources"
	srclocal "github.com/cairn-backup/cairn/sources/local"
)

// The library side of the restic compatibility proof (the CLI side is
// cmd/cairn/compat_test.go): backup.Run with the local source, checked by
// the real restic 0.19.1.

// testHost is the host every backup here records, so that cairn and
// restic take each other's snapshots as parents.
const testHost = "backup-oracle"

// fixture builds the awkward tree (everything root can make when run as
// root) and returns its root.
func fixture(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	testtree.MakeRemovable(t, base)
	req := testtree.Features{Xattrs: true}
	if os.Geteuid() == 0 {
		req.Devices, req.Ownership = true, true
	}
	return testtree.Build(t, filepath.Join(base, "src"), testtree.Options{SmallFiles: 20, Require: req}).Root
}

// countingSource records which files the backup opens.
type countingSource struct {
	*srclocal.Source
	root string

	mu     sync.Mutex
	opened []string // relative to root
}

func (s *countingSource) Walk(ctx context.Context, opts sources.WalkOptions, v sources.Visitor) error {
	return s.Source.Walk(ctx, opts, &countingVisitor{v, s})
}

type countingVisitor struct {
	sources.Visitor
	s *countingSource
}

func (v *countingVisitor) Visit(ctx context.Context, e *sources.Entry) error {
	if open := e.Open; open != nil {
		rel := strings.TrimPrefix(e.HostPath, v.s.root+"/")
		e.Open = func(ctx context.Context) (io.ReadCloser, error) {
			v.s.mu.Lock()
			v.s.opened = append(v.s.opened, rel)
			v.s.mu.Unlock()
			return open(ctx)
		}
	}
	return v.Visitor.Visit(ctx, e)
}

// backupDot backs up the working directory (set to root) as ".", like
// `restic backup .` there, and returns the result and the files opened.
func backupDot(t *testing.T, r *repo.Repository, root string, opts backup.Options) (*backup.Result, []string) {
	t.Helper()
	t.Chdir(root)
	s, err := srclocal.New([]string{"."}, srclocal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cs := &countingSource{Source: s, root: root}
	opts.Hostname = testHost
	opts.Location = time.UTC // the oracle runs with TZ=UTC
	res, err := backup.Run(t.Context(), r, cs, opts)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if res.Warnings != 0 {
		t.Errorf("backup: %d warnings", res.Warnings)
	}
	slices.Sort(cs.opened)
	return res, cs.opened
}

func openRepo(t *testing.T, dir, password string, opts repo.Options) *repo.Repository {
	t.Helper()
	be, err := local.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(t.Context(), be, password, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// compareRestore compares a restic restore with the source; restic does
// not link hard-linked symlinks again, so only their link group is left
// out.
func compareRestore(t *testing.T, src, target string) {
	t.Helper()
	testtree.Compare(t, src, target, testtree.CompareOptions{IgnoreRoot: true, IgnoreHardLinks: true})
	testtree.Compare(t, src, target, testtree.CompareOptions{IgnoreRoot: true,
		Ignore: func(p string) bool { return strings.HasPrefix(p, "hardlinks/symlink") }})
}

// resticAddsNothing backs the tree up again with restic --force (every
// file read, every tree rebuilt) and fails unless restic stores nothing
// and ends at the same root tree as the snapshot want.
func resticAddsNothing(t *testing.T, o *oracle.Restic, dir, src, want string, args ...string) {
	t.Helper()
	s := o.InDir(src).Backup(dir, []string{"."}, append([]string{"--host", testHost, "--force"}, args...)...)
	if s.DataBlobs != 0 || s.TreeBlobs != 0 || len(s.Errors) != 0 {
		t.Errorf("restic backup --force after cairn's added %d data and %d tree blobs (errors %v)", s.DataBlobs, s.TreeBlobs, s.Errors)
	}
	trees := map[string]string{}
	for _, sn := range o.Snapshots(dir, want, s.SnapshotID) {
		trees[sn.ID] = sn.Tree
	}
	if len(trees) != 2 || trees[want] != trees[s.SnapshotID] {
		t.Errorf("root trees: cairn's snapshot and restic's: %v", trees)
	}
}

// backup.Run of the awkward tree into a fresh repository gives what
// restic would: `restic check --read-data` is clean, `restic restore`
// reproduces the tree, and restic's own backup of it adds nothing.
func TestBackupIsResticBackup(t *testing.T) {
	src := fixture(t)
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(t.Context(), be, oracle.DefaultPassword, repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, opened := backupDot(t, r, src, backup.Options{})
	if res.ParentID != nil || len(opened) == 0 || res.Summary.FilesNew != uint(len(opened)) {
		t.Errorf("first backup: parent %v, %d files opened, summary %+v", res.ParentID, len(opened), res.Summary)
	}

	o := oracle.New(t)
	o.MustCheck(dir, true)
	target := filepath.Join(t.TempDir(), "target")
	id := res.Snapshot.ID().String()
	o.Restore(dir, id, target)
	compareRestore(t, src, target)
	resticAddsNothing(t, o, dir, src, id)
}

// changeTree changes the fixture after its first backup and returns the
// files a second backup must read: those with new content, a new mtime,
// a new ctime (chmod), and a new file. Nothing else may be opened.
func changeTree(t *testing.T, root string) []string {
	t.Helper()
	p := func(s string) string { return filepath.Join(root, s) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(p("files/small.txt"), []byte("a changed text file, longer than before\n"), 0o644))
	f, err := os.OpenFile(p("files/random.bin"), os.O_WRONLY|os.O_APPEND, 0)
	must(err)
	_, err = f.Write([]byte(strings.Repeat("appended after the first backup\n", 10000)))
	must(err)
	must(f.Close())
	when := time.Date(2025, 5, 6, 7, 8, 9, 10, time.UTC)
	must(os.Chtimes(p("files/text.log"), when, when))
	must(os.Chmod(p("modes/0600"), 0o640))
	must(os.WriteFile(p("files/new.txt"), []byte("added after the first backup\n"), 0o644))
	must(os.Remove(p("files/tiny")))
	return []string{"files/new.txt", "files/random.bin", "files/small.txt", "files/text.log", "modes/0600"}
}

// backup.Run into repositories restic made (version 1, and version 2 with
// compression max) over a changed tree takes restic's snapshot as parent
// and opens exactly the changed and new files; every other file keeps
// restic's content list without being read. restic then checks the
// repository clean, restores cairn's snapshot identically, and finds
// nothing to add.
func TestBackupIntoResticRepository(t *testing.T) {
	for _, c := range []struct {
		name        string
		version     int
		compression string
	}{{"v1", 1, ""}, {"v2-max", 2, "max"}} {
		t.Run(c.name, func(t *testing.T) {
			src := fixture(t)
			dir := filepath.Join(t.TempDir(), "repo")
			o := oracle.New(t)
			o.Init(dir, c.version)
			var args []string
			if c.compression != "" {
				args = []string{"--compression", c.compression}
			}
			first := o.InDir(src).Backup(dir, []string{"."}, append([]string{"--host", testHost}, args...)...)
			mustRead := changeTree(t, src)

			comp, err := repo.ParseCompression(c.compression)
			if err != nil {
				t.Fatal(err)
			}
			r := openRepo(t, dir, oracle.DefaultPassword, repo.Options{Compression: comp})
			res, opened := backupDot(t, r, src, backup.Options{})
			if res.ParentID == nil || res.ParentID.String() != first.SnapshotID {
				t.Errorf("parent %v, want restic's snapshot %s", res.ParentID, first.SnapshotID)
			}
			if !slices.Equal(opened, mustRead) {
				t.Errorf("files read: %q\nwant only the changed ones: %q", opened, mustRead)
			}
			total := first.TotalFilesProcessed // one new, one removed
			sum := res.Summary
			if sum.FilesNew != 1 || sum.FilesChanged != 4 || sum.FilesUnmodified != total-5 || sum.DataBlobs < 3 || sum.DataBlobs > 5 {
				t.Errorf("summary %+v (of %d files)", sum, total)
			}

			o.MustCheck(dir, true)
			target := filepath.Join(t.TempDir(), "target")
			id := res.Snapshot.ID().String()
			o.Restore(dir, id, target)
			compareRestore(t, src, target)
			resticAddsNothing(t, o, dir, src, id, args...)
		})
	}
}
