package restore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/repo/restore"
)

// resticRepo is a repository written by the real restic from a fixture
// tree, with a restic oracle to restore it the same way.
type resticRepo struct {
	oracle *oracle.Restic
	dir    string // the repository
	src    string // the tree backed up
}

// newResticRepo builds the fixture tree and backs it up with restic
// (version 1 or 2, compression as given) recording access times.
func newResticRepo(t *testing.T, version int, compression string, smallFiles int) *resticRepo {
	t.Helper()
	o := oracle.New(t).WithEnv("RESTIC_HOST=restore-test")
	tmp := t.TempDir()
	testtree.MakeRemovable(t, tmp)
	src := filepath.Join(tmp, "src")
	testtree.Build(t, src, testtree.Options{SmallFiles: smallFiles})
	dir := filepath.Join(tmp, "repo")
	o.Init(dir, version)
	args := []string{"--with-atime"}
	if compression != "" {
		args = append(args, "--compression", compression)
	}
	o.InDir(src).Backup(dir, []string{"."}, args...)
	return &resticRepo{oracle: o, dir: dir, src: src}
}

// cairnRestore restores the latest snapshot of a repository on disk with
// cairn.
func cairnRestore(t *testing.T, dir, subfolder string, opts restore.Options) (*restore.Result, error) {
	t.Helper()
	r := openLocal(t, dir)
	sn, _, err := r.FindSnapshot(context.Background(), "latest", nil)
	if err != nil {
		t.Fatal(err)
	}
	return restore.Run(context.Background(), r, sn, subfolder, opts)
}

func newTarget(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	testtree.MakeRemovable(t, base)
	return filepath.Join(base, "target")
}

// Repositories written by restic — version 1, and version 2 with
// compression off, auto and max — restore to exactly the tree restic
// backed up.
func TestRestoreResticRepositories(t *testing.T) {
	for _, c := range []struct {
		version     int
		compression string
	}{{1, ""}, {2, "off"}, {2, "auto"}, {2, "max"}} {
		t.Run(fmt.Sprintf("v%d-%s", c.version, c.compression), func(t *testing.T) {
			rr := newResticRepo(t, c.version, c.compression, 100)
			target := newTarget(t)
			res, err := cairnRestore(t, rr.dir, "", restore.Options{Target: target})
			if err != nil {
				t.Fatalf("restore: %v %v", err, res.Failures)
			}
			testtree.Compare(t, rr.src, target, compareOpts())
		})
	}
}

// restic's include and exclude patterns select the same entries as in
// restic, with its corner cases (anchoring, "**", negation, case folding,
// a hard link selected without its first name).
func TestRestorePatternsLikeRestic(t *testing.T) {
	rr := newResticRepo(t, 2, "auto", 20)
	for i, c := range []struct {
		args []string
		opts restore.Options
	}{
		{[]string{"--include", "/files"}, restore.Options{Include: []string{"/files"}}},
		{[]string{"--include", "*.log"}, restore.Options{Include: []string{"*.log"}}},
		{[]string{"--include", "/dirs/nested/**"}, restore.Options{Include: []string{"/dirs/nested/**"}}},
		{[]string{"--include", "/times/dir-pre-1970/file", "--include", "/hardlinks/b"}, restore.Options{Include: []string{"/times/dir-pre-1970/file", "/hardlinks/b"}}},
		{[]string{"--include", "deep/*/d02"}, restore.Options{Include: []string{"deep/*/d02"}}},
		{[]string{"--iinclude", "*.LOG"}, restore.Options{IInclude: []string{"*.LOG"}}},
		{[]string{"--exclude", "/names", "--exclude", "*.txt"}, restore.Options{Exclude: []string{"/names", "*.txt"}}},
		{[]string{"--exclude", "/excl/*", "--exclude", "!/excl/keep.txt"}, restore.Options{Exclude: []string{"/excl/*", "!/excl/keep.txt"}}},
		{[]string{"--iexclude", "/FILES", "--iexclude", "MANY"}, restore.Options{IExclude: []string{"/FILES", "MANY"}}},
		{[]string{"--include", "/many/f0000[0-4]", "--include", "!/many/f00002"}, restore.Options{Include: []string{"/many/f0000[0-4]", "!/many/f00002"}}},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			want, got := newTarget(t), newTarget(t)
			rr.oracle.Restore(rr.dir, "latest", want, c.args...)
			c.opts.Target = got
			if res, err := cairnRestore(t, rr.dir, "", c.opts); err != nil {
				t.Fatalf("restore %v: %v %v", c.args, err, res.Failures)
			}
			testtree.Compare(t, want, got, resticCompareOpts())
		})
	}
}

// resticCompareOpts compares a cairn restore with a restic restore of the
// same snapshot: everything, except the one deliberate difference (restic
// does not relink hard-linked symlinks).
func resticCompareOpts() testtree.CompareOptions {
	o := compareOpts()
	o.Ignore = func(p string) bool { return strings.HasPrefix(p, "hardlinks/symlink") }
	return o
}

// damage changes a restored tree the way the overwrite tests need: content
// changed with and without the size, a byte changed in a multi-blob file,
// entries of the wrong type, a newer and an older file, a broken hard
// link, an extra xattr and an extra file.
func damage(t *testing.T, dir string) {
	t.Helper()
	p := func(s string) string { return filepath.Join(dir, s) }
	keepTimes := func(name string, change func()) {
		fi, err := os.Lstat(p(name))
		if err != nil {
			t.Fatal(err)
		}
		change()
		if err := os.Chtimes(p(name), fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	keepTimes("files/small.txt", func() { must(os.WriteFile(p("files/small.txt"), []byte("A SMALL TEXT FILE\n"), 0o644)) })
	must(os.Truncate(p("files/text.log"), 1000))
	keepTimes("files/random.bin", func() {
		f, err := os.OpenFile(p("files/random.bin"), os.O_WRONLY, 0)
		must(err)
		_, err = f.WriteAt([]byte{'!'}, 2<<20)
		must(err)
		must(f.Close())
	})
	must(os.Remove(p("dirs/empty")))
	must(os.WriteFile(p("dirs/empty"), []byte("a file where a directory was"), 0o644))
	must(os.Remove(p("files/tiny")))
	must(os.Mkdir(p("files/tiny"), 0o755))
	must(os.Remove(p("links/relative")))
	must(os.WriteFile(p("links/relative"), []byte("a file where a symlink was"), 0o644))
	future := time.Now().Add(24 * time.Hour)
	must(os.Chtimes(p("modes/0600"), future, future))
	must(os.Chmod(p("modes/0600"), 0o644))
	must(os.Chtimes(p("times/epoch"), time.Unix(-5, 0), time.Unix(-5, 0)))
	must(os.Remove(p("hardlinks/b")))
	must(os.WriteFile(p("hardlinks/b"), []byte("three names for one inode\n"), 0o640))
	must(unix.Lsetxattr(p("xattrs/file"), "user.extra", []byte("not in the snapshot"), 0))
	must(os.WriteFile(p("files/extra"), []byte("not in the snapshot"), 0o644))
	must(os.MkdirAll(p("dirs/extra/sub"), 0o755))
	must(os.Remove(p("special/fifo")))
}

// Every --overwrite mode, with and without --delete, leaves a changed
// target in the same state as restic does.
func TestRestoreOverwriteLikeRestic(t *testing.T) {
	rr := newResticRepo(t, 2, "auto", 20)
	base := newTarget(t)
	rr.oracle.Restore(rr.dir, "latest", base)
	damage(t, base)
	for _, mode := range []string{"always", "if-changed", "if-newer", "never"} {
		for _, del := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s-delete=%v", mode, del), func(t *testing.T) {
				want, got := newTarget(t), newTarget(t)
				copyTree(t, base, want)
				copyTree(t, base, got)
				args := []string{"--overwrite", mode}
				if del {
					args = append(args, "--delete")
				}
				rr.oracle.Restore(rr.dir, "latest", want, args...)
				ow, err := restore.ParseOverwrite(mode)
				if err != nil {
					t.Fatal(err)
				}
				res, err := cairnRestore(t, rr.dir, "", restore.Options{Target: got, Overwrite: ow, Delete: del})
				if err != nil {
					t.Fatalf("restore: %v %v", err, res.Failures)
				}
				testtree.Compare(t, want, got, resticCompareOpts())
				if mode == "always" && del {
					// Nothing of the damage may survive.
					testtree.Compare(t, rr.src, got, resticCompareOpts())
				}
			})
		}
	}
}
