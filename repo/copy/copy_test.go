package copy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

func newMemRepo(t *testing.T, version uint) *repo.Repository {
	t.Helper()
	r, err := repo.Init(t.Context(), mem.New(), "pw", repo.InitOptions{Version: version, Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// addSnapshot stores a snapshot of one directory holding the given files.
func addSnapshot(t *testing.T, r *repo.Repository, host string, files map[string]string) *repo.Snapshot {
	t.Helper()
	ctx := t.Context()
	w, err := r.NewBlobWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var b tree.Builder
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := []byte(files[name])
		if _, err := w.SaveBlob(ctx, blob.DataBlob, data, blob.ID{}); err != nil {
			t.Fatal(err)
		}
		if err := b.Add(&tree.Node{Name: name, Type: tree.TypeFile, Mode: 0o600, ModTime: when, AccessTime: when, ChangeTime: when,
			Size: uint64(len(data)), Links: 1, Content: []blob.ID{blob.Hash(data)}}); err != nil {
			t.Fatal(err)
		}
	}
	buf := b.Finish()
	root := blob.Hash(buf)
	if _, err := w.SaveBlob(ctx, blob.TreeBlob, buf, root); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sn := &repo.Snapshot{Time: when, Tree: &root, Paths: []string{"/data"}, Hostname: host, Tags: []string{"a", "b"}}
	if _, err := r.SaveSnapshot(ctx, sn); err != nil {
		t.Fatal(err)
	}
	return sn
}

// With a batch size of one byte every snapshot is its own batch: each is
// saved after its own data, and shared data is copied once.
func TestBatches(t *testing.T) {
	ctx := t.Context()
	src, dst := newMemRepo(t, 2), newMemRepo(t, 1)
	var list []*repo.Snapshot
	for i := range 3 {
		list = append(list, addSnapshot(t, src, fmt.Sprint("host", i), map[string]string{"shared": "same in all", "own": fmt.Sprint("only in ", i)}))
	}
	var events []string
	n, err := Snapshots(ctx, src, dst, list, Options{
		BatchSize: 1, BatchTime: time.Nanosecond,
		Started: func(sn *repo.Snapshot) { events = append(events, "start "+sn.Hostname) },
		Planned: func(sn *repo.Snapshot, p Plan) { events = append(events, fmt.Sprintf("plan %d", p.Blobs)) },
		Saved:   func(from, to *repo.Snapshot) { events = append(events, "saved "+to.Hostname) },
	})
	if err != nil || n != 3 {
		t.Fatalf("copied %d, %v", n, err)
	}
	want := "start host0,plan 3,saved host0,start host1,plan 2,saved host1,start host2,plan 2,saved host2"
	if got := strings.Join(events, ","); got != want {
		t.Errorf("events\n%s\nwant\n%s", got, want)
	}
	var indexes int
	if err := dst.List(ctx, backend.IndexFile, func(blob.ID, int64) error { indexes++; return nil }); err != nil {
		t.Fatal(err)
	}
	if indexes != 3 {
		t.Errorf("%d index files, want one per batch", indexes)
	}
	got, err := dst.Snapshots(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	missing, skipped := Missing(list, got)
	if len(missing) != 0 || len(skipped) != 3 {
		t.Errorf("after the copy: %d missing, %d skipped", len(missing), len(skipped))
	}
}

// A source pack that does not decrypt fails the copy with the blob named;
// no snapshot is saved.
func TestDamagedSource(t *testing.T) {
	ctx := t.Context()
	src, dst := newMemRepo(t, 2), newMemRepo(t, 2)
	sn := addSnapshot(t, src, "h", map[string]string{"file": "will be damaged"})
	if err := src.LoadIndex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	dataID := blob.Hash([]byte("will be damaged"))
	loc := src.Index().Lookup(blob.Handle{ID: dataID, Type: blob.DataBlob})[0]
	h := backend.Handle{Type: backend.PackFile, Name: loc.Pack.String()}
	buf, err := backend.LoadAll(ctx, src.Backend(), h)
	if err != nil {
		t.Fatal(err)
	}
	buf[loc.Offset+20] ^= 1
	if err := src.Backend().Save(ctx, h, backend.NewByteReader(buf, false)); err != nil {
		t.Fatal(err)
	}
	n, err := Snapshots(ctx, src, dst, []*repo.Snapshot{sn}, Options{})
	if err == nil || n != 0 || !strings.Contains(err.Error(), dataID.String()) {
		t.Fatalf("copy from a damaged pack: %d, %v", n, err)
	}
	list, err := dst.Snapshots(ctx, nil)
	if err != nil || len(list) != 0 {
		t.Errorf("snapshots after a failed copy: %v, %v", list, err)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("error is a cancellation: %v", err)
	}
}

// restic's test of an earlier copy: all content fields, paths and tags in
// any order, Parent and Original ignored.
func TestMissing(t *testing.T) {
	id := func(s string) blob.ID { return blob.Hash([]byte(s)) }
	tr := id("tree")
	base := func() *repo.Snapshot {
		return &repo.Snapshot{Time: time.Unix(100, 0), Tree: &tr, Paths: []string{"/a", "/b"}, Hostname: "h", Tags: []string{"x", "y"}, Excludes: []string{"e1", "e2"}}
	}
	src := base()
	// A snapshot loaded from the repository has its ID; here we only
	// use Original to tie the copy to the source.
	srcID := id("src")
	src.Original = &srcID

	for _, c := range []struct {
		name   string
		change func(*repo.Snapshot)
		copied bool
	}{
		{"identical", func(*repo.Snapshot) {}, true},
		{"paths and tags reordered", func(s *repo.Snapshot) { s.Paths = []string{"/b", "/a"}; s.Tags = []string{"y", "x"} }, true},
		{"other parent", func(s *repo.Snapshot) { p := id("p"); s.Parent = &p }, true},
		{"retagged", func(s *repo.Snapshot) { s.Tags = []string{"x"} }, false},
		{"excludes reordered", func(s *repo.Snapshot) { s.Excludes = []string{"e2", "e1"} }, false},
		{"other time", func(s *repo.Snapshot) { s.Time = s.Time.Add(time.Second) }, false},
		{"other host", func(s *repo.Snapshot) { s.Hostname = "g" }, false},
		{"other original", func(s *repo.Snapshot) { o := id("other"); s.Original = &o }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := base()
			dst.Original = &srcID
			c.change(dst)
			missing, skipped := Missing([]*repo.Snapshot{src}, []*repo.Snapshot{dst})
			if got := len(skipped) == 1 && len(missing) == 0; got != c.copied {
				t.Errorf("recognised as a copy: %v, want %v", got, c.copied)
			}
		})
	}
}
