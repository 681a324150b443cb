package restore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/restore"
)

// compareOpts are what a restore of a cairn backup must reproduce: all of
// it, ownership only when running as root (a restore without privileges
// cannot chown), and the target directory's own metadata is the
// target's.
func compareOpts() testtree.CompareOptions {
	return testtree.CompareOptions{Atime: true, IgnoreRoot: true, IgnoreOwnership: os.Geteuid() != 0}
}

// The awkward fixture tree, backed up with cairn's pipeline into the
// in-memory and the local backend, comes back identical: content, modes
// with special bits, owners, nanosecond times before 1970 and after 2038,
// symlinks with odd targets, hard links (also of symlinks), FIFOs,
// devices, xattrs, odd and non-UTF-8 names, empty files and directories,
// deep trees.
func TestRestoreFixtureTree(t *testing.T) {
	src := t.TempDir()
	testtree.MakeRemovable(t, src)
	m := testtree.Build(t, src, testtree.Options{SmallFiles: 300})
	for _, onDisk := range []bool{false, true} {
		name := "mem"
		if onDisk {
			name = "local"
		}
		t.Run(name, func(t *testing.T) {
			r, _ := newRepo(t, onDisk, repo.InitOptions{})
			sn := backupDir(t, r, src)
			target := filepath.Join(t.TempDir(), "restore")
			testtree.MakeRemovable(t, filepath.Dir(target))
			res, err := restore.Run(context.Background(), r, sn, "", restore.Options{Target: target})
			if err != nil {
				t.Fatalf("restore: %v (failures %v)", err, res.Failures)
			}
			testtree.Compare(t, src, target, compareOpts())
			files, others, dirs, links := countManifest(m)
			if res.FilesRestored != int64(files) || res.Others != int64(others) || res.Dirs != int64(dirs) || res.HardLinks != int64(links) {
				t.Errorf("result %+v; manifest has %d files, %d others, %d dirs, %d extra links", res, files, others, dirs, links)
			}
			if res.FilesSkipped != 0 || res.Warnings != 0 || len(res.Failures) != 0 {
				t.Errorf("result %+v", res)
			}
		})
	}
}

// countManifest counts what a full restore of the fixture makes: regular
// files (first names), symlinks, FIFOs and devices (first names),
// directories below the root, and the extra names of hard-link groups.
func countManifest(m *testtree.Manifest) (files, others, dirs, links int) {
	for _, f := range m.Files {
		switch {
		case f.Path == "":
		case f.HardLink != "":
			links++
		case f.Mode.IsDir():
			dirs++
		case f.Mode.IsRegular():
			files++
		case f.Mode.Type()&os.ModeSocket != 0:
		default:
			others++
		}
	}
	return
}

// A subfolder's contents land directly in the target.
func TestRestoreSubfolder(t *testing.T) {
	src := t.TempDir()
	testtree.Build(t, src, testtree.Options{SmallFiles: 10})
	r, _ := newRepo(t, false, repo.InitOptions{})
	sn := backupDir(t, r, src)
	for _, sub := range []string{"dirs", "/dirs/", "dirs/nested/../nested"} {
		target := filepath.Join(t.TempDir(), "t")
		testtree.MakeRemovable(t, filepath.Dir(target))
		if _, err := restore.Run(context.Background(), r, sn, sub, restore.Options{Target: target}); err != nil {
			t.Fatalf("%s: %v", sub, err)
		}
		want := filepath.Join(src, "dirs")
		if strings.Contains(sub, "nested") {
			want = filepath.Join(src, "dirs/nested")
		}
		testtree.Compare(t, want, target, compareOpts())
	}
	for sub, msg := range map[string]string{
		"nope":          "path nope: not found",
		"files/tiny":    "path files/tiny: not a directory",
		"dirs/nope/x":   "path dirs/nope: not found",
		"../files/tiny": "path ..: not found",
	} {
		_, err := restore.Run(context.Background(), r, sn, sub, restore.Options{Target: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("subfolder %q: error %v, want %q", sub, err, msg)
		}
	}
}

// Bad options are refused before anything happens.
func TestRestoreOptionErrors(t *testing.T) {
	r, _ := newRepo(t, false, repo.InitOptions{})
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	sn := backupDir(t, r, src)
	target := filepath.Join(t.TempDir(), "never-made")
	for _, o := range []restore.Options{
		{},
		{Target: target, Include: []string{"a"}, Exclude: []string{"b"}},
		{Target: target, IInclude: []string{"a"}, IExclude: []string{"b"}},
		{Target: target, IncludeXattr: []string{"a"}, ExcludeXattr: []string{"b"}},
		{Target: target, DryRun: true, Verify: true},
		{Target: target, Include: []string{"[bad"}},
		{Target: target, Overwrite: 17},
		{Target: "/", Delete: true},
	} {
		if _, err := restore.Run(context.Background(), r, sn, "", o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target made: %v", err)
	}
	if _, err := restore.Run(context.Background(), r, &repo.Snapshot{}, "", restore.Options{Target: target}); err == nil {
		t.Error("snapshot without tree accepted")
	}
}
