package prune_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/prune"
)

// partlyUsed stores four packs whose blobs are half used (one snapshot
// references the even ones), so that a prune with --max-unused 0 repacks
// them all; it returns the used blobs.
func partlyUsed(t *testing.T, r *repo.Repository) []blob.ID {
	t.Helper()
	var used []blob.ID
	for p := range 4 {
		var data []string
		for i := range 50 {
			data = append(data, fmt.Sprintf("pack %d blob %d %s", p, i, strings.Repeat("x", i)))
		}
		ids := saveData(t, r, false, data...)
		for i := 0; i < len(ids); i += 2 {
			used = append(used, ids[i])
		}
	}
	snapshotOf(t, r, used)
	return used
}

func sortedPacks(ids []blob.ID) []string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	slices.Sort(s)
	return s
}

// After a prune the in-memory index (changed in place: copied packs dropped
// during the repack, the rest by the index rewrite) is the index the
// repository stores.
func TestInMemoryIndexAfterPrune(t *testing.T) {
	r, dir := newTestRepo(t)
	used := partlyUsed(t, r)
	r = reopen(t, dir)
	plan, err := prune.NewPlan(t.Context(), r, prune.Options{MaxUnused: prune.MaxUnusedBytes(0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.RepackPacks()) != 4 {
		t.Fatalf("repack %d packs, want 4", len(plan.RepackPacks()))
	}
	if err := plan.Execute(t.Context()); err != nil {
		t.Fatal(err)
	}
	mem, stored := r.Index(), reopen(t, dir).Index()
	if got, want := sortedPacks(mem.Packs()), sortedPacks(stored.Packs()); !slices.Equal(got, want) {
		t.Fatalf("packs in memory %v, stored %v", got, want)
	}
	for _, id := range mem.Packs() {
		if got, want := mem.IndexFilesOf(id), stored.IndexFilesOf(id); !slices.Equal(got, want) {
			t.Fatalf("pack %s: index files in memory %v, stored %v", id.Str(), got, want)
		}
	}
	for _, id := range used {
		h := blob.Handle{ID: id, Type: blob.DataBlob}
		if got, want := mem.Lookup(h), stored.Lookup(h); len(got) != 1 || !slices.Equal(got, want) {
			t.Fatalf("blob %s: in memory %v, stored %v", id.Str(), got, want)
		}
	}
	if mem.Len(blob.DataBlob) != len(used) || stored.Len(blob.DataBlob) != len(used) {
		t.Fatalf("%d and %d data blobs, want %d", mem.Len(blob.DataBlob), stored.Len(blob.DataBlob), len(used))
	}
	mustCheck(t, r)
}

// failPacks fails saving packs once armed.
type failPacks struct {
	backend.Backend
	armed atomic.Bool
}

func (b *failPacks) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if h.Type == backend.PackFile && b.armed.Load() {
		return errors.New("disk full")
	}
	return b.Backend.Save(ctx, h, rd)
}

// A repack that fails leaves the in-memory index unloaded (it had dropped
// the packs already copied): loading it again finds every blob, the
// repository is whole and the next prune finishes.
func TestFailedRepackUnloadsIndex(t *testing.T) {
	r, dir := newTestRepo(t)
	used := partlyUsed(t, r)
	lb, err := local.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	be := &failPacks{Backend: lb}
	r, err = repo.Open(t.Context(), be, "pw", repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	plan, err := prune.NewPlan(t.Context(), r, prune.Options{MaxUnused: prune.MaxUnusedBytes(0)})
	if err != nil {
		t.Fatal(err)
	}
	be.armed.Store(true)
	if err := plan.Execute(t.Context()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Execute: %v, want the pack upload's error", err)
	}
	if len(r.Index().Packs()) != 0 {
		t.Fatal("the in-memory index is still loaded after the failed repack")
	}
	be.armed.Store(false)
	if err := r.EnsureIndex(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range used {
		if !r.Index().Has(blob.Handle{ID: id, Type: blob.DataBlob}) {
			t.Fatalf("blob %s is gone from the reloaded index", id.Str())
		}
	}
	mustCheck(t, r)
	plan, err = prune.NewPlan(t.Context(), r, prune.Options{MaxUnused: prune.MaxUnusedBytes(0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Execute(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, reopen(t, dir))
}
