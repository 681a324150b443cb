package backup

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
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
