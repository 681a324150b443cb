package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/sources"
)

// TestDamagedSnapshotSkippedAndNamed: when the latest snapshot cannot be
// loaded, the backup still runs (a damaged snapshot must not stop scheduled
// backups), takes the newest loadable snapshot as parent, and names the
// damaged one in Result.SkippedSnapshots so the caller can warn.
func TestDamagedSnapshotSkippedAndNamed(t *testing.T) {
	ctx := context.Background()
	r := testRepo(t)
	files := map[string][]byte{"a.txt": []byte("alpha"), "b/c.txt": []byte("charlie")}
	first, err := Run(ctx, r, newMemSource(files), Options{Location: time.UTC, Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	second, err := Run(ctx, r, newMemSource(files), Options{Location: time.UTC, Time: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.SkippedSnapshots)+len(second.SkippedSnapshots) != 0 {
		t.Fatalf("skipped snapshots in a sound repository: %v %v", first.SkippedSnapshots, second.SkippedSnapshots)
	}

	// Replace the newest snapshot's file with garbage under the same name.
	be := r.Backend()
	h := backend.Handle{Type: backend.SnapshotFile, Name: second.Snapshot.ID().String()}
	if err := be.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := be.Save(ctx, h, backend.NewByteReader([]byte("garbage"), false)); err != nil {
		t.Fatal(err)
	}

	res, err := Run(ctx, r, newMemSource(files), Options{Location: time.UTC, Time: t0.Add(2 * time.Hour)})
	if err != nil {
		t.Fatalf("backup with a damaged snapshot in the repository: %v", err)
	}
	if res.ParentID == nil || *res.ParentID != first.Snapshot.ID() {
		t.Errorf("parent %v, want the older loadable snapshot %s", res.ParentID, first.Snapshot.ID().Str())
	}
	if len(res.SkippedSnapshots) != 1 || !strings.Contains(res.SkippedSnapshots[0], second.Snapshot.ID().Str()) {
		t.Errorf("SkippedSnapshots = %q, want one message naming %s", res.SkippedSnapshots, second.Snapshot.ID().Str())
	}
	if res.Warnings != 0 {
		t.Errorf("%d source warnings: a damaged snapshot is not a source problem (exit 3)", res.Warnings)
	}
}

// vanishingSource reports one entry as vanished during the walk (as
// sources/local does when lstat fails after readdir) and lets another
// vanish between the walk and the read.
type vanishingSource struct {
	*memSource
	walkGone, openGone string
}

func (s *vanishingSource) Walk(ctx context.Context, opts sources.WalkOptions, v sources.Visitor) error {
	return s.memSource.Walk(ctx, opts, &vanishingVisitor{v, s, opts})
}

type vanishingVisitor struct {
	sources.Visitor
	s    *vanishingSource
	opts sources.WalkOptions
}

func (v *vanishingVisitor) Visit(ctx context.Context, e *sources.Entry) error {
	switch e.Path {
	case v.s.walkGone:
		return v.opts.OnError(e.HostPath, fmt.Errorf("lstat %s: %w", e.HostPath, errors.Join(sources.ErrVanished, fs.ErrNotExist)))
	case v.s.openGone:
		e.Open = func(context.Context) (io.ReadCloser, error) {
			return nil, fmt.Errorf("open %s: %w", e.HostPath, errors.Join(sources.ErrVanished, fs.ErrNotExist))
		}
	}
	return v.Visitor.Visit(ctx, e)
}

// TestVanishedFilesWarn: entries that vanish during the walk or before
// they are read are warnings (the CLI exits 3), and the snapshot is still
// saved with everything else.
func TestVanishedFilesWarn(t *testing.T) {
	ctx := context.Background()
	r := testRepo(t)
	src := &vanishingSource{
		memSource: newMemSource(map[string][]byte{"keep": []byte("kept"), "d/walk-gone": []byte("w"), "open-gone": []byte("o")}),
		walkGone:  "d/walk-gone", openGone: "open-gone",
	}
	var warned []string
	res, err := Run(ctx, r, src, Options{Warn: func(p string, err error) {
		if !errors.Is(err, sources.ErrVanished) {
			t.Errorf("warning for %s: %v does not wrap sources.ErrVanished", p, err)
		}
		warned = append(warned, p)
	}})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(warned)
	if res.Warnings != 2 || !slices.Equal(warned, []string{"/d/walk-gone", "/open-gone"}) {
		t.Fatalf("warnings %d %q, want the two vanished files", res.Warnings, warned)
	}
	got := map[string][]byte{}
	readBack(t, r, *res.Snapshot.Tree, "", got)
	if len(got) != 1 || string(got["keep"]) != "kept" {
		t.Fatalf("snapshot holds %q, want only keep", slices.Collect(maps.Keys(got)))
	}
}
