package backup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
	"github.com/cairn-backup/cairn/sources"
)

// memSource is a source over an in-memory list of entries, for unit tests
// of the pipeline (the real sources have their own conformance suite).
type memSource struct {
	entries  []sources.Entry
	data     map[string][]byte
	streamed bool
	shuffle  bool
	has      sources.Metadata
}

func (s *memSource) Info() sources.Info {
	return sources.Info{Hostname: "memhost", Paths: []string{"/data"}, Has: s.has, Streamed: s.streamed}
}

func (s *memSource) Close() error { return nil }

func (s *memSource) Walk(ctx context.Context, opts sources.WalkOptions, v sources.Visitor) error {
	entries := append([]sources.Entry(nil), s.entries...)
	if s.shuffle {
		rand.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
	} else {
		sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	}
	var stack []string
	for i := range entries {
		e := entries[i]
		if !s.streamed {
			for len(stack) > 0 && !strings.HasPrefix(e.Path, stack[len(stack)-1]+"/") {
				if err := v.LeaveDir(ctx, stack[len(stack)-1]); err != nil {
					return err
				}
				stack = stack[:len(stack)-1]
			}
		}
		if e.Type == sources.File {
			data := s.data[e.Path]
			e.Open = func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		}
		if err := v.Visit(ctx, &e); err != nil {
			return err
		}
		if e.Type == sources.Dir && !s.streamed {
			stack = append(stack, e.Path)
		}
	}
	for i := len(stack) - 1; i >= 0; i-- {
		if err := v.LeaveDir(ctx, stack[i]); err != nil {
			return err
		}
	}
	return v.LeaveDir(ctx, "")
}

var t0 = time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)

func newMemSource(files map[string][]byte) *memSource {
	s := &memSource{data: files, has: sources.HasInode | sources.HasChangeTime}
	dirs := map[string]bool{}
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for i, p := range paths {
		d := files[p]
		ino := uint64(100 + i)
		s.entries = append(s.entries, sources.Entry{Path: p, HostPath: "/" + p, Type: sources.File, Mode: 0o644, Size: int64(len(d)), ModTime: t0, ChangeTime: t0, Inode: ino, Links: 1})
		for dir, _ := splitPath(p); dir != ""; dir, _ = splitPath(dir) {
			dirs[dir] = true
		}
	}
	for d := range dirs {
		s.entries = append(s.entries, sources.Entry{Path: d, HostPath: "/" + d, Type: sources.Dir, Mode: fs.ModeDir | 0o755, ModTime: t0, ChangeTime: t0})
	}
	return s
}

func testRepo(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Init(context.Background(), mem.New(), "pw", repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// readBack walks a snapshot's tree and returns path → content.
func readBack(t *testing.T, r *repo.Repository, id blob.ID, prefix string, out map[string][]byte) {
	t.Helper()
	tr, err := r.LoadTree(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tr.Nodes() {
		p := prefix + n.Name
		switch n.Type {
		case tree.TypeDir:
			readBack(t, r, *n.Subtree, p+"/", out)
		case tree.TypeFile:
			var buf []byte
			for _, c := range n.Content {
				d, err := r.LoadBlob(context.Background(), blob.DataBlob, c, nil)
				if err != nil {
					t.Fatal(err)
				}
				buf = append(buf, d...)
			}
			if uint64(len(buf)) != n.Size {
				t.Fatalf("%s: size %d, content %d", p, n.Size, len(buf))
			}
			out[p] = buf
		}
	}
}

func testFiles() map[string][]byte {
	big := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.IntN(256))
	}
	files := map[string][]byte{
		"a/empty":      {},
		"a/small.txt":  []byte("hello world\n"),
		"a/b/c/deep":   []byte("deep"),
		"big.bin":      big,
		"sparse":       make([]byte, 2<<20),
		"dup1":         []byte("same"),
		"dup2":         []byte("same"),
		"x/\xffname":   []byte("odd"),
		"text/log.txt": bytes.Repeat([]byte("log line with some text\n"), 50000),
	}
	for i := 0; i < 200; i++ {
		files[fmt.Sprintf("many/f%03d", i)] = []byte(fmt.Sprintf("file %d", i))
	}
	return files
}

func TestBackupAndIncremental(t *testing.T) {
	ctx := context.Background()
	r := testRepo(t)
	files := testFiles()
	res, err := Run(ctx, r, newMemSource(files), Options{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	if res.Warnings != 0 || res.ParentID != nil {
		t.Fatalf("warnings %d parent %v", res.Warnings, res.ParentID)
	}
	got := map[string][]byte{}
	readBack(t, r, *res.Snapshot.Tree, "", got)
	if len(got) != len(files) {
		t.Fatalf("%d files back, want %d", len(got), len(files))
	}
	for p, d := range files {
		if !bytes.Equal(got[p], d) {
			t.Fatalf("%q differs", p)
		}
	}
	s := res.Summary
	if s.FilesNew != uint(len(files)) || s.FilesUnmodified != 0 || s.DataBlobs == 0 || s.TreeBlobs == 0 {
		t.Fatalf("first summary %+v", s)
	}

	// Unchanged: nothing read, nothing added, same tree.
	res2, err := Run(ctx, r, newMemSource(files), Options{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	s2 := res2.Summary
	if res2.ParentID == nil || *res2.ParentID != res.Snapshot.ID() {
		t.Fatal("parent not found")
	}
	if s2.FilesUnmodified != uint(len(files)) || s2.FilesNew+s2.FilesChanged != 0 || s2.DataBlobs+s2.TreeBlobs != 0 || s2.DirsChanged+s2.DirsNew != 0 {
		t.Fatalf("unchanged summary %+v", s2)
	}
	if *res2.Snapshot.Tree != *res.Snapshot.Tree {
		t.Fatal("unchanged backup produced a different tree")
	}

	// One changed file: read again, one dir chain changes.
	src := newMemSource(files)
	for i := range src.entries {
		if src.entries[i].Path == "a/small.txt" {
			src.entries[i].ModTime = t0.Add(time.Second)
			src.data = map[string][]byte{}
			for k, v := range files {
				src.data[k] = v
			}
			src.data["a/small.txt"] = []byte("changed!\n")
			src.entries[i].Size = 9
		}
	}
	res3, err := Run(ctx, r, src, Options{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	s3 := res3.Summary
	if s3.FilesChanged != 1 || s3.FilesUnmodified != uint(len(files)-1) || s3.DataBlobs != 1 || s3.DirsChanged != 1 {
		t.Fatalf("changed summary %+v", s3)
	}
	// Force reads everything but adds nothing new.
	res4, err := Run(ctx, r, src, Options{Location: time.UTC, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if res4.Summary.DataBlobs != 0 || *res4.Snapshot.Tree != *res3.Snapshot.Tree {
		t.Fatalf("force summary %+v", res4.Summary)
	}
}

// A stream that lists entries in any order gives the same tree as a sorted
// walk.
func TestStreamedOrderIndependent(t *testing.T) {
	ctx := context.Background()
	files := testFiles()
	r := testRepo(t)
	want, err := Run(ctx, r, newMemSource(files), Options{Location: time.UTC, NoParent: true})
	if err != nil {
		t.Fatal(err)
	}
	src := newMemSource(files)
	src.streamed, src.shuffle = true, true
	got, err := Run(ctx, r, src, Options{Location: time.UTC, NoParent: true})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Snapshot.Tree != *want.Snapshot.Tree {
		t.Fatal("streamed backup differs from sorted walk")
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r, err := repo.Init(ctx, be, "pw", repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, r, newMemSource(testFiles()), Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary.DataBlobs == 0 || !res.Snapshot.ID().IsNull() {
		t.Fatalf("dry run summary %+v", res.Summary)
	}
	sns, err := r.Snapshots(ctx, nil)
	if err != nil || len(sns) != 0 {
		t.Fatalf("dry run saved snapshots: %v %v", sns, err)
	}
	if n := r.Index().Len(blob.DataBlob); n != 0 {
		t.Fatalf("dry run indexed %d blobs", n)
	}
}

func TestUnreadableFileWarns(t *testing.T) {
	ctx := context.Background()
	r := testRepo(t)
	src := newMemSource(map[string][]byte{"ok": []byte("fine"), "bad": []byte("x")})
	var warned []string
	res, err := Run(ctx, r, &failingSource{src, "bad"}, Options{Warn: func(p string, err error) { warned = append(warned, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Warnings != 1 || len(warned) != 1 || warned[0] != "/bad" {
		t.Fatalf("warnings %d %v", res.Warnings, warned)
	}
	got := map[string][]byte{}
	readBack(t, r, *res.Snapshot.Tree, "", got)
	if _, ok := got["bad"]; ok || string(got["ok"]) != "fine" {
		t.Fatalf("snapshot content %v", got)
	}
}

type failingSource struct {
	*memSource
	bad string
}

func (f *failingSource) Walk(ctx context.Context, opts sources.WalkOptions, v sources.Visitor) error {
	return f.memSource.Walk(ctx, opts, &failingVisitor{v, f.bad})
}

type failingVisitor struct {
	sources.Visitor
	bad string
}

func (f *failingVisitor) Visit(ctx context.Context, e *sources.Entry) error {
	if e.Path == f.bad {
		e.Open = func(context.Context) (io.ReadCloser, error) {
			return nil, fmt.Errorf("open %s: %w", e.HostPath, fs.ErrPermission)
		}
	}
	return f.Visitor.Visit(ctx, e)
}
