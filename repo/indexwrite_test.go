package repo

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// writePacks saves n packs of one data blob each, each pack with its own
// index file, and returns the pack IDs and the blob of each pack.
func writePacks(t *testing.T, r *Repository, n int, seed string) (packs []blob.ID, blobs []blob.ID) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		w, err := r.NewBlobWriter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		data := []byte(fmt.Sprintf("%s blob %d", seed, i))
		if _, err := w.SaveBlob(ctx, blob.DataBlob, data, blob.ID{}); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		id := blob.Hash(data)
		locs := r.Index().Lookup(blob.Handle{ID: id, Type: blob.DataBlob})
		if len(locs) == 0 {
			t.Fatalf("blob %d not indexed after flush", i)
		}
		packs = append(packs, locs[0].Pack)
		blobs = append(blobs, id)
	}
	return packs, blobs
}

func listIDs(t *testing.T, r *Repository, ft backend.FileType) []blob.ID {
	t.Helper()
	var ids []blob.ID
	if err := r.List(context.Background(), ft, func(id blob.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ids, blob.ID.Compare)
	return ids
}

func sortedIDs(ids []blob.ID) []blob.ID {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, blob.ID.Compare)
	return ids
}

func TestRewriteIndexDropsAndReplacesFiles(t *testing.T) {
	ctx := context.Background()
	r, be := initMem(t, 2, Options{})
	packs, blobs := writePacks(t, r, 4, "drop")
	oldFiles := listIDs(t, r, backend.IndexFile)
	if len(oldFiles) != 4 {
		t.Fatalf("%d index files before, want 4", len(oldFiles))
	}

	var last RewriteIndexProgress
	ids, err := r.RewriteIndex(ctx, RewriteIndexOptions{
		Drop:     func(p blob.ID) bool { return p == packs[1] },
		Progress: func(p RewriteIndexProgress) { last = p },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 {
		t.Fatalf("wrote %d index files for 3 small packs, want 1", len(ids))
	}
	if got := listIDs(t, r, backend.IndexFile); !slices.Equal(got, sortedIDs(ids)) {
		t.Fatalf("index files after rewrite %v, want only the new %v", got, ids)
	}
	if last.Saved != 1 || last.ToSave != 1 || last.Deleted != 4 || last.ToDelete != 4 || last.LastDeleteErr != nil {
		t.Fatalf("last progress %+v", last)
	}
	for i, id := range blobs {
		has := r.Index().Has(blob.Handle{ID: id, Type: blob.DataBlob})
		if has != (i != 1) {
			t.Fatalf("in-memory index: blob of pack %d present=%v", i, has)
		}
	}

	// A fresh open sees the same: three packs, the dropped one gone, and
	// the file names the in-memory index remembers.
	r2, err := Open(ctx, be, "secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.LoadIndex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	want := []blob.ID{packs[0], packs[2], packs[3]}
	if got := r2.Index().Packs(); !slices.Equal(sortedIDs(got), sortedIDs(want)) {
		t.Fatalf("packs after reopen %v, want %v", got, want)
	}
	for _, p := range want {
		if f := r.Index().IndexFilesOf(p); !slices.Equal(f, ids) {
			t.Fatalf("in-memory index names files %v for pack %s, want %v", f, p.Str(), ids)
		}
	}
	for i, id := range []blob.ID{blobs[0], blobs[2], blobs[3]} {
		if _, err := r2.LoadBlob(ctx, blob.DataBlob, id, nil); err != nil {
			t.Fatalf("blob %d after rewrite: %v", i, err)
		}
	}
}

// An Add entry replaces the in-memory entries of the same pack, and
// FromScratch ignores everything else: the two ways repair index uses it.
func TestRewriteIndexAddAndFromScratch(t *testing.T) {
	ctx := context.Background()
	r, be := initMem(t, 2, Options{})
	packs, blobs := writePacks(t, r, 3, "add")
	header := func(p blob.ID) index.PackEntry {
		buf, err := backend.LoadAll(ctx, be, backend.Handle{Type: backend.PackFile, Name: p.String()})
		if err != nil {
			t.Fatal(err)
		}
		bl, err := pack.ReadHeader(bytes.NewReader(buf), int64(len(buf)), r.Key())
		if err != nil {
			t.Fatal(err)
		}
		return index.NewPackEntry(p, bl)
	}

	// A wrong entry for pack 0 (the blob at a bogus offset) is replaced by
	// the one read from its header.
	wrong := header(packs[0])
	wrong.Blobs[0].Offset += 7
	if _, err := r.RewriteIndex(ctx, RewriteIndexOptions{Add: []index.PackEntry{wrong}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.LoadBlob(ctx, blob.DataBlob, blobs[0], nil); err == nil {
		t.Fatal("blob loaded through a bogus offset")
	}
	ids, err := r.RewriteIndex(ctx, RewriteIndexOptions{Add: []index.PackEntry{header(packs[0])}})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Index().Lookup(blob.Handle{ID: blobs[0], Type: blob.DataBlob}); len(got) != 1 {
		t.Fatalf("blob 0 has %d locations after replacing its pack's entry, want 1", len(got))
	}
	if _, err := r.LoadBlob(ctx, blob.DataBlob, blobs[0], nil); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, r, backend.IndexFile); !slices.Equal(got, sortedIDs(ids)) {
		t.Fatalf("index files %v, want %v", got, ids)
	}

	// From scratch with only pack 2: packs 0 and 1 are no longer indexed.
	if _, err := r.RewriteIndex(ctx, RewriteIndexOptions{FromScratch: true, Add: []index.PackEntry{header(packs[2])}}); err != nil {
		t.Fatal(err)
	}
	if got := r.Index().Packs(); !slices.Equal(got, packs[2:]) {
		t.Fatalf("packs after from-scratch rewrite %v, want %v", got, packs[2:])
	}

	// Nothing left: no index file at all, as restic writes none either.
	ids, err = r.RewriteIndex(ctx, RewriteIndexOptions{FromScratch: true})
	if err != nil || len(ids) != 0 {
		t.Fatalf("empty rewrite wrote %v, %v", ids, err)
	}
	if got := listIDs(t, r, backend.IndexFile); len(got) != 0 {
		t.Fatalf("index files left: %v", got)
	}
}

func TestRewriteIndexNeedsLoadedIndex(t *testing.T) {
	ctx := context.Background()
	_, be := initMem(t, 2, Options{})
	r, err := Open(ctx, be, "secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.RewriteIndex(ctx, RewriteIndexOptions{}); err == nil {
		t.Fatal("rewrite without a loaded index succeeded: it would have written an empty index")
	}
}

// Many packs are split into files of at most indexMaxBlobs blobs plus one
// pack, never splitting a pack.
func TestNewIndexFilesSplit(t *testing.T) {
	r, _ := initMem(t, 2, Options{})
	var add []index.PackEntry
	total := 0
	for i := 0; total < 2*indexMaxBlobs+10; i++ {
		p := index.PackEntry{ID: blob.Hash([]byte(fmt.Sprint("pack", i)))}
		for j := 0; j < 1000; j++ {
			p.Blobs = append(p.Blobs, index.BlobEntry{ID: blob.Hash([]byte(fmt.Sprint(i, "/", j))), Type: blob.DataBlob, Offset: uint32(j * 100), Length: 100})
		}
		add = append(add, p)
		total += len(p.Blobs)
	}
	plan := r.newIndexPlan(RewriteIndexOptions{FromScratch: true, Add: add})
	if len(plan.files) != 3 {
		t.Fatalf("%d files for %d blobs, want 3", len(plan.files), total)
	}
	n := 0
	for i := range plan.files {
		f := plan.file(i)
		if c := f.BlobCount(); c > indexMaxBlobs+1000 {
			t.Fatalf("file with %d blobs", c)
		}
		n += f.BlobCount()
	}
	if n != total {
		t.Fatalf("files hold %d blobs, want %d", n, total)
	}
}

// A rewrite on a memory backend whose removals fail leaves the in-memory
// index alone and reports the failure.
func TestRewriteIndexRemoveFails(t *testing.T) {
	ctx := context.Background()
	r, be := initMem(t, 2, Options{})
	writePacks(t, r, 2, "fail")
	before := r.Index()
	r.be = &failRemove{Backend: be}
	ids, err := r.RewriteIndex(ctx, RewriteIndexOptions{})
	if err == nil {
		t.Fatal("rewrite with failing removals succeeded")
	}
	if len(ids) != 1 || r.Index() != before {
		t.Fatalf("ids %v; in-memory index replaced=%v", ids, r.Index() != before)
	}
	// The repository now holds old and new files, a superset: still
	// readable, and a second run (with removals working) cleans up.
	r.be = be
	ids, err = r.RewriteIndex(ctx, RewriteIndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, r, backend.IndexFile); !slices.Equal(got, sortedIDs(ids)) {
		t.Fatalf("index files %v, want %v", got, ids)
	}
}

type failRemove struct{ *mem.Backend }

func (f *failRemove) Remove(context.Context, backend.Handle) error {
	return fmt.Errorf("remove refused")
}
