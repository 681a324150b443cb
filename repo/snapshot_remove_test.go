package repo

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/blob"
)

func TestRemoveSnapshot(t *testing.T) {
	ctx := context.Background()
	r, be := initMem(t, 2, Options{})
	tree := blob.Hash([]byte("tree"))
	id, err := r.SaveSnapshot(ctx, &Snapshot{Time: time.Unix(1, 0), Tree: &tree, Paths: []string{"/x"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveSnapshot(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, r, backend.SnapshotFile); len(got) != 0 {
		t.Fatalf("snapshot files after removal: %v", got)
	}
	// Already gone: done, not an error.
	if err := r.RemoveSnapshot(ctx, id); err != nil {
		t.Fatalf("removing a removed snapshot: %v", err)
	}
	// Any other failure is reported with the snapshot it concerns.
	r.be = &failRemove{Backend: be}
	err = r.RemoveSnapshot(ctx, id)
	if err == nil || !strings.Contains(err.Error(), "remove snapshot "+id.Str()) || !strings.Contains(err.Error(), "remove refused") {
		t.Fatalf("failing removal: %v", err)
	}
}
