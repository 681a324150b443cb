//go:build linux

package local_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/internal/testtools"
	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/filter"
	"github.com/cairn-backup/cairn/sources/local"
)

// errorLog records OnError calls; it is safe for concurrent use.
type errorLog struct {
	mu   sync.Mutex
	errs map[string]error
}

func (l *errorLog) onError(path string, err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.errs == nil {
		l.errs = map[string]error{}
	}
	l.errs[path] = err
	return nil
}

func mustNew(t *testing.T, targets ...string) *local.Source {
	t.Helper()
	src, err := local.New(targets, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestVanished changes the tree at the moments the walk is most exposed:
// between listing a directory and lstat()ing an entry, and between
// lstat()ing a directory or symlink and opening or reading it.
func TestVanished(t *testing.T) {
	base := t.TempDir()
	makeFiles(t, base, "a-gone", "b-dir/inner", "c-link-target", "d-kept")
	if err := os.Symlink("c-link-target", filepath.Join(base, "c-link")); err != nil {
		t.Fatal(err)
	}
	restore := local.SetTestHooks(func(dir string) {
		if dir == base {
			os.Remove(filepath.Join(base, "a-gone"))
		}
	}, func(path string) {
		switch path {
		case filepath.Join(base, "b-dir"):
			os.RemoveAll(path)
		case filepath.Join(base, "c-link"):
			os.Remove(path)
			os.WriteFile(path, nil, 0o644) // no longer a symlink: readlink fails with EINVAL
		}
	})
	defer restore()

	var log errorLog
	entries, _ := collect(t, mustNew(t, base), sources.WalkOptions{OnError: log.onError})
	for _, name := range []string{"a-gone", "b-dir", "c-link"} {
		p := filepath.Join(base, name)
		err := log.errs[p]
		if !errors.Is(err, sources.ErrVanished) {
			t.Errorf("%s: OnError got %v, want an error wrapping sources.ErrVanished", name, err)
		}
		if _, ok := entries[p]; ok {
			t.Errorf("%s visited although it vanished", name)
		}
	}
	if !errors.Is(log.errs[filepath.Join(base, "a-gone")], fs.ErrNotExist) {
		t.Errorf("a-gone: %v does not wrap fs.ErrNotExist", log.errs[filepath.Join(base, "a-gone")])
	}
	if _, ok := entries[filepath.Join(base, "d-kept")]; !ok {
		t.Error("d-kept not visited")
	}
	if len(log.errs) != 3 {
		t.Errorf("OnError calls: %v", log.errs)
	}
}

// TestOpen checks that Open reads the file the walk listed and refuses
// whatever took its place.
func TestOpen(t *testing.T) {
	base := t.TempDir()
	makeFiles(t, base, "same", "replaced", "deleted", "to-symlink", "to-fifo")
	src := mustNew(t, base)
	entries, _ := collect(t, src, sources.WalkOptions{})
	entry := func(name string) *sources.Entry {
		t.Helper()
		e := entries[filepath.Join(base, name)]
		if e == nil || e.Open == nil {
			t.Fatalf("%s: no entry with Open", name)
		}
		return e
	}
	replace := func(name string, make func(p string) error) {
		t.Helper()
		p := filepath.Join(base, name)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := make(p); err != nil {
			t.Fatal(err)
		}
	}
	// An editor's atomic save: the new file exists before the old one
	// goes, so its inode number cannot be the recycled old one.
	if err := os.WriteFile(filepath.Join(base, "new"), []byte("new content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(base, "new"), filepath.Join(base, "replaced")); err != nil {
		t.Fatal(err)
	}
	replace("deleted", func(string) error { return nil })
	replace("to-symlink", func(p string) error { return os.Symlink("same", p) })
	replace("to-fifo", func(p string) error { return unix.Mkfifo(p, 0o644) })

	rc, err := entry("same").Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	if err != nil || string(data) != "same" {
		t.Errorf("read %q, %v", data, err)
	}
	if ra, ok := rc.(io.ReaderAt); !ok {
		t.Error("the reader is not an io.ReaderAt")
	} else if n, err := ra.ReadAt(data[:3], 1); n != 3 || err != nil || string(data[:3]) != "ame" {
		t.Errorf("ReadAt: %d %q %v", n, data[:3], err)
	}
	if err := rc.Close(); err != nil {
		t.Error(err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := rc.Read(data); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}

	for _, name := range []string{"replaced", "deleted", "to-symlink", "to-fifo"} {
		done := make(chan error, 1)
		go func() {
			rc, err := entry(name).Open(t.Context())
			if err == nil {
				rc.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, sources.ErrVanished) {
				t.Errorf("%s: Open gave %v, want an error wrapping sources.ErrVanished", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Open hangs", name)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := entry("same").Open(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := entry("same").Open(t.Context()); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Open after Close: %v", err)
	}
	if err := src.Walk(t.Context(), sources.WalkOptions{}, &countVisitor{}); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Walk after Close: %v", err)
	}
}

// failingVisitor fails at a given path, in Visit or in LeaveDir.
type failingVisitor struct {
	at    string
	leave bool
	err   error
	after int // calls after the failure
	seen  bool
}

func (v *failingVisitor) Visit(_ context.Context, e *sources.Entry) error {
	if v.seen {
		v.after++
	}
	if !v.leave && strings.HasSuffix(e.Path, v.at) {
		v.seen = true
		return v.err
	}
	return nil
}

func (v *failingVisitor) LeaveDir(_ context.Context, p string) error {
	if v.seen {
		v.after++
	}
	if v.leave && strings.HasSuffix(p, v.at) {
		v.seen = true
		return v.err
	}
	return nil
}

// TestStopLeaksNothing ends walks early in every way and checks that no
// worker goroutine or directory descriptor survives them.
func TestStopLeaksNothing(t *testing.T) {
	base := t.TempDir()
	var files []string
	for _, d := range []string{"a", "b", "b/c", "b/c/d", "e"} {
		for i := range 150 {
			files = append(files, d+"/f"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26)))
		}
	}
	makeFiles(t, base, files...)
	src := mustNew(t, base)
	fds0, gor0 := openFDs(t), runtime.NumGoroutine()
	boom := errors.New("boom")
	for _, v := range []*failingVisitor{
		{at: "/b/c/faa", err: boom},
		{at: "/b/c", leave: true, err: boom},
		{at: "/a", err: boom},
	} {
		err := src.Walk(t.Context(), sources.WalkOptions{}, v)
		if !errors.Is(err, boom) {
			t.Errorf("visitor failing at %s: Walk returned %v", v.at, err)
		}
		if v.after != 0 {
			t.Errorf("visitor failing at %s: %d more calls after the failure", v.at, v.after)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	err := src.Walk(ctx, sources.WalkOptions{}, visitFunc(func(*sources.Entry) {
		if n++; n == 100 {
			cancel()
		}
	}))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled walk returned %v", err)
	}
	// Workers exit when Walk returns; give the scheduler a moment to
	// retire them before counting.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > gor0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > gor0 {
		t.Errorf("%d goroutines after the walks, %d before", g, gor0)
	}
	if fds := openFDs(t); fds != fds0 {
		t.Errorf("%d open descriptors after the walks, %d before", fds, fds0)
	}
}

type visitFunc func(*sources.Entry)

func (f visitFunc) Visit(_ context.Context, e *sources.Entry) error { f(e); return nil }
func (f visitFunc) LeaveDir(context.Context, string) error          { return nil }

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestOneFileSystem mounts a tmpfs inside a target and compares the walk
// with restic's --one-file-system: the mount point stays, empty, unless a
// target lies inside it.
func TestOneFileSystem(t *testing.T) {
	base := t.TempDir()
	makeFiles(t, base, "on-root", "mnt/.keep", "x/y")
	mnt := filepath.Join(base, "mnt")
	if err := unix.Mount("cairn-test", mnt, "tmpfs", 0, "size=1m"); err != nil {
		testtools.Unavailable(t, "mount a tmpfs (needs root with CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	makeFiles(t, mnt, "inner/file", "top")

	r := newRestic(t)
	for _, targets := range [][]string{{base}, {base, mnt + "/inner"}, {mnt}} {
		t.Run(strings.ReplaceAll(strings.Join(targets, "+"), "/", "_"), func(t *testing.T) {
			want, err := r.dryRun("/", append([]string{"--one-file-system"}, targets...)...)
			if err != nil {
				t.Fatal(err)
			}
			entries, _ := collect(t, mustNew(t, targets...), sources.WalkOptions{OneFileSystem: true})
			var got []string
			for p, e := range entries {
				if e.Type == sources.Dir {
					p += "/"
				}
				got = append(got, p)
			}
			slices.Sort(got)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("walk differs from restic's\n got %q\nwant %q", got, want)
			}
		})
	}
	entries, _ := collect(t, mustNew(t, base), sources.WalkOptions{})
	if _, ok := entries[mnt+"/top"]; !ok {
		t.Error("without OneFileSystem the walk must enter the mount")
	}
}

// TestExcludeBeforeStat checks restic's order: a path excluded by pattern
// is never lstat()ed, so an entry that cannot be stat'ed raises no error
// when excluded.
func TestExcludeBeforeStat(t *testing.T) {
	base := t.TempDir()
	makeFiles(t, base, "skip.tmp", "keep")
	// An entry deleted after listing fails lstat for any user, root too.
	restore := local.SetTestHooks(func(dir string) {
		if dir == base {
			os.Remove(filepath.Join(base, "skip.tmp"))
		}
	}, nil)
	defer restore()
	flt, err := filter.New(filter.Options{Excludes: []string{"*.tmp"}})
	if err != nil {
		t.Fatal(err)
	}
	var log errorLog
	entries, _ := collect(t, mustNew(t, base), sources.WalkOptions{Exclude: flt, OnError: log.onError})
	if len(log.errs) != 0 {
		t.Errorf("errors for an excluded entry: %v", log.errs)
	}
	if _, ok := entries[filepath.Join(base, "keep")]; !ok {
		t.Error("keep not visited")
	}
}

// plainExcluder implements only sources.Excluder: no name-only phase, and
// a marker rule that leaves the whole directory out.
type plainExcluder struct{}

func (plainExcluder) Excluded(e *sources.Entry) bool { return strings.HasSuffix(e.HostPath, ".tmp") }
func (plainExcluder) ExcludedByContents(dir *sources.Entry, peek func(string, int) ([]byte, error)) bool {
	_, err := peek(".nobackup", 0)
	return err == nil
}

func TestPlainExcluder(t *testing.T) {
	base := t.TempDir()
	makeFiles(t, base, "a.tmp", "b", "marked/.nobackup", "marked/c", "d/e")
	entries, _ := collect(t, mustNew(t, base), sources.WalkOptions{Exclude: plainExcluder{}})
	for name, want := range map[string]bool{"a.tmp": false, "b": true, "marked": false, "marked/c": false, "d": true, "d/e": true} {
		if _, ok := entries[filepath.Join(base, name)]; ok != want {
			t.Errorf("%s visited %v, want %v", name, ok, want)
		}
	}
}

// TestSchedulingDoesNotChangeTheWalk walks the fixture with extreme worker
// and read-ahead settings: the events must be the same as with the
// defaults, whatever order the workers happen to run in.
func TestSchedulingDoesNotChangeTheWalk(t *testing.T) {
	m := testtree.Build(t, t.TempDir()+"/fixture", testtree.Options{SmallFiles: 500})
	record := func(opts local.Options) []string {
		src, err := local.New([]string{m.Root}, opts)
		if err != nil {
			t.Fatal(err)
		}
		var events []string
		v := &eventVisitor{events: &events}
		if err := src.Walk(t.Context(), sources.WalkOptions{}, v); err != nil {
			t.Fatal(err)
		}
		return events
	}
	want := record(local.Options{})
	for _, opts := range []local.Options{{Workers: 1, ReadAhead: 1}, {Workers: 8, ReadAhead: 1}, {Workers: 8, ReadAhead: 10000}, {Workers: 1, ReadAhead: 10000}} {
		if got := record(opts); !slices.Equal(got, want) {
			t.Errorf("options %+v: %d events, differing from the default walk's %d", opts, len(got), len(want))
		}
	}
}

type eventVisitor struct{ events *[]string }

func (v *eventVisitor) Visit(_ context.Context, e *sources.Entry) error {
	*v.events = append(*v.events, "visit "+e.Path+" "+e.Type.String())
	return nil
}

func (v *eventVisitor) LeaveDir(_ context.Context, p string) error {
	*v.events = append(*v.events, "leave "+p)
	return nil
}

// TestLargeDirectoryBounded checks that the walk does not lstat a large
// directory far ahead of the visitor: its entries would all sit in memory.
func TestLargeDirectoryBounded(t *testing.T) {
	base := t.TempDir()
	const n = 5000
	for i := range n {
		if err := os.WriteFile(filepath.Join(base, fmt.Sprintf("f%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var statted atomic.Int64
	restore := local.SetTestHooks(nil, func(string) { statted.Add(1) })
	defer restore()
	var ahead int64 = -1
	err := mustNew(t, base).Walk(t.Context(), sources.WalkOptions{}, visitFunc(func(e *sources.Entry) {
		if ahead < 0 && strings.HasSuffix(e.Path, "/f00000") {
			time.Sleep(200 * time.Millisecond) // the workers run ahead meanwhile, as far as allowed
			ahead = statted.Load()
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	// Eight chunks of 64 entries may be in flight beyond the one visited.
	if ahead < 64 || ahead > 9*64 {
		t.Errorf("%d of %d entries lstat()ed while the visitor was on the first one, want between 64 and %d", ahead, n, 9*64)
	}
	if got := statted.Load(); got != n {
		t.Errorf("%d entries lstat()ed in all, want %d", got, n)
	}
}

// TestRelativeTargetsKeepTheirDirectory checks that relative targets mean
// what they meant when New ran, even after the process changes directory.
func TestRelativeTargetsKeepTheirDirectory(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	makeFiles(t, a, "x/in-a")
	makeFiles(t, b, "x/in-b")
	t.Chdir(a)
	src := mustNew(t, "x", ".")
	t.Chdir(b)
	entries, _ := collect(t, src, sources.WalkOptions{})
	if _, ok := entries["/x/in-a"]; !ok || entries["/x/in-b"] != nil {
		t.Errorf("walked %v, want a's x", entries)
	}
	if got := src.Info().Paths; !slices.Equal(got, []string{a + "/x", a}) {
		t.Errorf("Info().Paths = %q", got)
	}
}

// TestTargetGoneBeforeWalk deletes a target between New and Walk: one
// OnError call with sources.ErrVanished, whose answer decides whether the
// walk goes on.
func TestTargetGoneBeforeWalk(t *testing.T) {
	base := t.TempDir()
	makeFiles(t, base, "gone/f", "kept/f")
	src := mustNew(t, base+"/gone", base+"/kept")
	if err := os.RemoveAll(base + "/gone"); err != nil {
		t.Fatal(err)
	}
	for _, stop := range []error{nil, errors.New("stop")} {
		calls := 0
		var visited []string
		err := src.Walk(t.Context(), sources.WalkOptions{OnError: func(path string, err error) error {
			calls++
			if path != base+"/gone" || !errors.Is(err, sources.ErrVanished) {
				t.Errorf("OnError(%q, %v)", path, err)
			}
			return stop
		}}, visitFunc(func(e *sources.Entry) { visited = append(visited, e.Path) }))
		if err != stop {
			t.Errorf("Walk returned %v, want %v", err, stop)
		}
		if calls != 1 {
			t.Errorf("OnError called %d times, want once", calls)
		}
		kept := slices.Contains(visited, strings.TrimPrefix(base, "/")+"/kept/f")
		if kept != (stop == nil) {
			t.Errorf("with OnError returning %v, kept/f visited: %v", stop, kept)
		}
	}
}

// TestPathLongerThanPathMax walks below PATH_MAX: listing and lstat work
// relative to the open directory, but extended attributes and Open need
// the full path, which the kernel refuses. Each such entry is reported
// (right before it is visited) and kept without its attributes.
func TestPathLongerThanPathMax(t *testing.T) {
	base := t.TempDir()
	dir, err := os.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	fd := int(dir.Fd())
	name := strings.Repeat("n", 250)
	depth := 0
	for host := len(base); host <= unix.PathMax; host += len(name) + 1 {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if fd != int(dir.Fd()) {
			unix.Close(fd)
		}
		fd = next
		depth++
	}
	leaf, err := unix.Openat(fd, "leaf", unix.O_CREAT|unix.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(leaf)
	unix.Close(fd)

	var order []string
	src := mustNew(t, base)
	err = src.Walk(t.Context(), sources.WalkOptions{OnError: func(path string, err error) error {
		if !errors.Is(err, unix.ENAMETOOLONG) {
			t.Errorf("OnError(%q…, %v)", path[:40], err)
		}
		order = append(order, "error "+path)
		return nil
	}}, visitFunc(func(e *sources.Entry) { order = append(order, "visit "+e.HostPath) }))
	if err != nil {
		t.Fatal(err)
	}
	var deepest string
	errs := 0
	for i, ev := range order {
		if host, ok := strings.CutPrefix(ev, "error "); ok {
			errs++
			if i+1 >= len(order) || order[i+1] != "visit "+host {
				t.Errorf("error for %q… not followed by its entry", host[:60])
			}
		}
		if strings.HasSuffix(ev, "/leaf") {
			deepest = ev
		}
	}
	if !strings.HasPrefix(deepest, "visit ") {
		t.Errorf("the file below PATH_MAX was not visited (%d levels deep)", depth)
	}
	if errs == 0 {
		t.Error("no entry beyond PATH_MAX was reported")
	}
}
