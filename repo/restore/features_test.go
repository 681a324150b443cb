package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/repo/tree"
)

// smallTree builds a fixture tree and backs it up into an in-memory
// repository.
func smallTree(t *testing.T) (string, *repo.Repository, *repo.Snapshot) {
	t.Helper()
	src := t.TempDir()
	testtree.MakeRemovable(t, src)
	testtree.Build(t, src, testtree.Options{SmallFiles: 30})
	r, _ := newRepo(t, false, repo.InitOptions{})
	return src, r, backupDir(t, r, src)
}

// A dry run counts what a real run does and changes nothing.
func TestRestoreDryRun(t *testing.T) {
	_, r, sn := smallTree(t)
	target := newTarget(t)
	dry, err := restore.Run(context.Background(), r, sn, "", restore.Options{Target: target, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dry run made the target: %v", err)
	}
	real, err := restore.Run(context.Background(), r, sn, "", restore.Options{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if dry.FilesRestored == 0 || dry.FilesRestored != real.FilesRestored || dry.BytesRestored != real.BytesRestored ||
		dry.Dirs != real.Dirs || dry.Others != real.Others || dry.HardLinks != real.HardLinks {
		t.Errorf("dry run %+v, real run %+v", dry, real)
	}
	// Over the restored tree, a dry run finds every file already right.
	again, err := restore.Run(context.Background(), r, sn, "", restore.Options{Target: target, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.FilesRestored != 0 || again.FilesSkipped != real.FilesRestored {
		t.Errorf("dry run over a complete restore: %+v", again)
	}
}

// Restoring over a complete restore rewrites nothing (every file is read
// and found right, or trusted by size and mtime) and leaves the same tree;
// Progress ends with every file and byte accounted for.
func TestRestoreAgainSkipsCorrectFiles(t *testing.T) {
	src, r, sn := smallTree(t)
	target := newTarget(t)
	first, err := restore.Run(context.Background(), r, sn, "", restore.Options{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []restore.Overwrite{restore.OverwriteAlways, restore.OverwriteIfChanged} {
		var p restore.Progress
		res, err := restore.Run(context.Background(), r, sn, "", restore.Options{Target: target, Overwrite: mode, Progress: &p})
		if err != nil {
			t.Fatal(err)
		}
		if res.FilesRestored != 0 || res.FilesSkipped != first.FilesRestored || res.BytesSkipped != first.BytesRestored {
			t.Errorf("%v: %+v after %+v", mode, res, first)
		}
		if !p.TotalsKnown.Load() || p.FilesDone.Load() != p.FilesTotal.Load() || p.BytesDone.Load() != p.BytesTotal.Load() || p.Errors.Load() != 0 {
			t.Errorf("%v: progress files %d/%d bytes %d/%d errors %d", mode, p.FilesDone.Load(), p.FilesTotal.Load(), p.BytesDone.Load(), p.BytesTotal.Load(), p.Errors.Load())
		}
		testtree.Compare(t, src, target, compareOpts())
	}
}

// With Sparse, all-zero blobs (the zero chunk and shorter runs of zeros)
// become holes and the logical size is kept; without it the zeros are
// written.
func TestRestoreSparse(t *testing.T) {
	src, r, sn := smallTree(t)
	for _, sparse := range []bool{false, true} {
		target := newTarget(t)
		if _, err := restore.Run(context.Background(), r, sn, "", restore.Options{Target: target, Sparse: sparse}); err != nil {
			t.Fatal(err)
		}
		opts := compareOpts()
		opts.Sparse = sparse
		testtree.Compare(t, src, target, opts)
		for _, name := range []string{"files/zeros.bin", "files/sparse.img"} {
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(target, name), &st); err != nil {
				t.Fatal(err)
			}
			holes := st.Blocks*512 < st.Size
			if holes != sparse {
				t.Errorf("sparse=%v: %s has %d blocks for %d bytes", sparse, name, st.Blocks, st.Size)
			}
			if name == "files/zeros.bin" && sparse && st.Blocks != 0 {
				t.Errorf("%s: %d blocks for a file of zeros", name, st.Blocks)
			}
		}
	}
}

// Verify reads back what was written; a file that does not match the
// snapshot (here a node whose size disagrees with its content) fails it.
func TestRestoreVerify(t *testing.T) {
	r, _ := newRepo(t, false, repo.InitOptions{})
	tw := newTreeWriter(t, r)
	good := fileNode("good", tw.data("12345"))
	good.Size = 5
	bad := fileNode("bad", tw.data("abcde"))
	bad.Size = 3
	sn := tw.snapshot(tw.tree(bad, good))
	var warned []string
	res, err := restore.Run(context.Background(), r, sn, "", restore.Options{
		Target: newTarget(t), Verify: true,
		Warn: func(p string, err error) { warned = append(warned, p) },
	})
	if !errors.Is(err, restore.ErrIncomplete) || len(res.Failures) != 1 || res.Failures[0].Path != "/bad" ||
		!errors.Is(res.Failures[0].Err, restore.ErrVerify) || res.Verified != 1 {
		t.Fatalf("error %v, result %+v", err, res)
	}
	if !slices.Equal(warned, []string{"/bad"}) || res.Warnings != 1 {
		t.Errorf("warnings %v (%d)", warned, res.Warnings)
	}
}

// The restore holds a shared lock: an exclusive lock held by someone else
// stops it (unless NoLock), and it leaves no lock behind.
func TestRestoreLocking(t *testing.T) {
	_, r, sn := smallTree(t)
	ctx := context.Background()
	_, held, err := r.Lock(ctx, true, repo.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	target := newTarget(t)
	_, err = restore.Run(ctx, r, sn, "", restore.Options{Target: target})
	var le *repo.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("restore under an exclusive lock: %v", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the target was touched without the lock: %v", err)
	}
	if _, err := restore.Run(ctx, r, sn, "", restore.Options{Target: newTarget(t), NoLock: true}); err != nil {
		t.Fatalf("with NoLock: %v", err)
	}
	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Run(ctx, r, sn, "", restore.Options{Target: newTarget(t)}); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := r.Backend().List(ctx, backend.LockFile, func(backend.FileInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("%d lock files left (%v)", n, err)
	}
}

// Options.Lock replaces the default lock: Run reads while it waits but
// writes nothing to the target before it returns, releases it at the end,
// and fails with its error (without waiting for the reading) when it is
// refused.
func TestRestoreLockHook(t *testing.T) {
	_, r, sn := smallTree(t)
	ctx := context.Background()
	target := newTarget(t)
	release := make(chan struct{})
	var unlocked atomic.Int32
	done := make(chan error, 1)
	var res *restore.Result
	go func() {
		var err error
		res, err = restore.Run(ctx, r, sn, "", restore.Options{Target: target, Lock: func(ctx context.Context) (context.Context, func(), error) {
			<-release
			return ctx, func() { unlocked.Add(1) }, nil
		}})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // time to read the index and the trees
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the target was touched before the lock was granted: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if unlocked.Load() != 1 {
		t.Errorf("unlock called %d times", unlocked.Load())
	}
	if res.FilesRestored == 0 {
		t.Errorf("nothing restored after the lock was granted: %+v", res)
	}

	refused := errors.New("refused by the test")
	target = newTarget(t)
	_, err := restore.Run(ctx, r, sn, "", restore.Options{Target: target, Lock: func(ctx context.Context) (context.Context, func(), error) {
		return nil, nil, refused
	}})
	if !errors.Is(err, refused) {
		t.Fatalf("refused lock: %v", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the target was touched without the lock: %v", err)
	}
}

// --include-xattr and --exclude-xattr pick the attributes restored.
func TestRestoreXattrPatterns(t *testing.T) {
	_, r, sn := smallTree(t)
	for _, c := range []struct {
		opts restore.Options
		want []string
	}{
		{restore.Options{ExcludeXattr: []string{"user.big", "user.b*y"}}, []string{"user.a", "user.empty", "user.text", "user.ünïcode name"}},
		{restore.Options{IncludeXattr: []string{"user.[at]*"}}, []string{"user.a", "user.text"}},
	} {
		target := newTarget(t)
		c.opts.Target = target
		if _, err := restore.Run(context.Background(), r, sn, "", c.opts); err != nil {
			t.Fatal(err)
		}
		got := xattrNames(t, filepath.Join(target, "xattrs/file"))
		if !slices.Equal(got, c.want) {
			t.Errorf("%+v: xattrs %q, want %q", c.opts, got, c.want)
		}
	}
}

func xattrNames(t *testing.T, p string) []string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if strings.HasPrefix(s, "user.") {
			names = append(names, s)
		}
	}
	slices.Sort(names)
	return names
}

// A blob used many times, in one file and across files, is written to
// every place; the target's metadata is never touched; an empty snapshot
// makes an empty target.
func TestRestoreSharedBlobsAndEmpty(t *testing.T) {
	r, _ := newRepo(t, false, repo.InitOptions{})
	tw := newTreeWriter(t, r)
	a, b := tw.data("AAAA"), tw.data("bb")
	content := []blob.ID{a, b, a, a, b}
	var nodes []*tree.Node
	for _, name := range []string{"f1", "f2", "f3"} {
		n := fileNode(name, content...)
		n.Size = 16
		nodes = append(nodes, n)
	}
	sn := tw.snapshot(tw.tree(nodes...))
	empty := tw.snapshot(tw.tree())
	target := newTarget(t)
	if err := os.Mkdir(target, 0o751); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Run(context.Background(), r, empty, "", restore.Options{Target: target}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Fatalf("empty snapshot restored %d entries", len(ents))
	}
	if res, err := restore.Run(context.Background(), r, sn, "", restore.Options{Target: target, Verify: true}); err != nil {
		t.Fatal(err, res.Failures)
	}
	for _, name := range []string{"f1", "f2", "f3"} {
		if got, err := os.ReadFile(filepath.Join(target, name)); err != nil || string(got) != "AAAAbbAAAAAAAAbb" {
			t.Errorf("%s: %q %v", name, got, err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(target, &st); err != nil || st.Mode&0o7777 != 0o751 {
		t.Errorf("target mode %o (%v)", st.Mode&0o7777, err)
	}
}

// --delete removes only what it can be sure of: nothing when the snapshot
// restores nothing, nothing once a node was refused (restic then no longer
// knows what belongs), and nothing in a directory whose tree is missing.
func TestRestoreDeleteSafety(t *testing.T) {
	r, _ := newRepo(t, false, repo.InitOptions{})
	tw := newTreeWriter(t, r)
	fine := tw.data("fine")
	missing := blob.Hash([]byte("no such tree"))
	emptySn := tw.snapshot(tw.tree())
	refusedSn := tw.snapshot(tw.tree(fileNode("ok", fine), fileNode("..", fine)))
	goneSn := tw.snapshot(tw.tree(dirNode("gone", &missing), fileNode("ok", fine)))
	plainSn := tw.snapshot(tw.tree(dirNode("gone", ptr(tw.tree())), fileNode("ok", fine)))

	prepare := func() string {
		target := newTarget(t)
		for _, p := range []string{"extra", "gone/extra"} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(target, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(target, p), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return target
	}
	exists := func(target, p string) bool {
		_, err := os.Lstat(filepath.Join(target, p))
		return err == nil
	}
	for _, c := range []struct {
		name        string
		sn          *repo.Snapshot
		extra, gone bool // which extra files survive
	}{
		{"empty", emptySn, true, true},
		{"refused-name", refusedSn, true, true},
		{"missing-tree", goneSn, false, true},
		{"plain", plainSn, false, false},
	} {
		target := prepare()
		res, _ := restore.Run(context.Background(), r, c.sn, "", restore.Options{Target: target, Delete: true})
		if exists(target, "extra") != c.extra || exists(target, "gone/extra") != c.gone {
			t.Errorf("%s: extra kept %v (want %v), gone/extra kept %v (want %v); %+v", c.name,
				exists(target, "extra"), c.extra, exists(target, "gone/extra"), c.gone, res)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// slowBackend delays every read, so that a restore can be caught in the
// middle.
type slowBackend struct{ backend.Backend }

func (b slowBackend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	if h.Type == backend.PackFile {
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.Backend.Load(ctx, h, length, offset, fn)
}

// Cancelling the context stops the restore promptly with the context's
// error and a partial result; nothing panics or hangs.
func TestRestoreCancel(t *testing.T) {
	ctx := context.Background()
	r, err := repo.Init(ctx, slowBackend{mem.New()}, "test", repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{PackSize: repo.MinPackSize})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for i := range 12 {
		data := bytes.Repeat([]byte{byte(i)}, 1<<20)
		data[0] = 0xff // not the zero chunk
		if err := os.WriteFile(filepath.Join(src, fmt.Sprint("f", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sn := backupDir(t, r, src)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var p restore.Progress
	go func() {
		for p.BytesDone.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	res, err := restore.Run(cctx, r, sn, "", restore.Options{Target: newTarget(t), Progress: &p, Workers: 2})
	if !errors.Is(err, context.Canceled) || res == nil {
		t.Fatalf("result %+v, error %v; want a partial result and context.Canceled", res, err)
	}
	if res.FilesRestored >= 12 {
		t.Errorf("all %d files restored despite the cancellation", res.FilesRestored)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancellation took %v", d)
	}
}

// An existing file with another hard link outside the snapshot is
// replaced, not rewritten in place: the other name keeps its content.
func TestRestoreBreaksForeignHardLinks(t *testing.T) {
	r, _ := newRepo(t, false, repo.InitOptions{})
	tw := newTreeWriter(t, r)
	n := fileNode("a", tw.data("from the snapshot"))
	n.Size = 17
	sn := tw.snapshot(tw.tree(n))
	target := newTarget(t)
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(filepath.Dir(target), "outside")
	if err := os.WriteFile(outside, []byte("old content, other name"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(outside, filepath.Join(target, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Run(context.Background(), r, sn, "", restore.Options{Target: target}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "a")); string(b) != "from the snapshot" {
		t.Errorf("a = %q", b)
	}
	if b, _ := os.ReadFile(outside); string(b) != "old content, other name" {
		t.Errorf("the other name changed: %q", b)
	}
}
