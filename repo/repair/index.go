package repair

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// IndexOptions tune Index.
type IndexOptions struct {
	// ReadAllPacks ignores the existing index files and reads the header
	// of every pack (restic's --read-all-packs).
	ReadAllPacks bool
	// PackProgress, if set, is told after each pack header read.
	PackProgress func(done, total int)
}

// IndexResult says what Index found and did.
type IndexResult struct {
	// InvalidIndexes are index files that could not be loaded or decoded;
	// they were deleted with the others.
	InvalidIndexes []blob.ID
	// Added are packs no index listed; Reindexed packs whose stored size
	// did not match their index entries. Both had their headers read.
	Added, Reindexed []blob.ID
	// Missing are packs the index listed that do not exist; their entries
	// were dropped.
	Missing []blob.ID
	// Skipped are packs (from Added and Reindexed) whose header could not
	// be read: they are in no index now.
	Skipped []blob.ID
	// NewIndexes are the index files written.
	NewIndexes []blob.ID
}

// Index rebuilds the index of r the way restic's `repair index` does:
//
//   - every index file that loads is kept as the starting point (one that
//     does not is reported and dropped), unless opts.ReadAllPacks;
//   - the packs are listed, and every pack that no index lists, or whose
//     size differs from what its entries add up to, gets its header read
//     (a pack whose header cannot be read is left out and reported);
//   - entries of packs that do not exist are dropped;
//   - the result is written as new index files and every old index file is
//     deleted (repo.Repository.RewriteIndex).
//
// The caller holds the exclusive lock. Afterwards r's in-memory index is
// the new one.
func Index(ctx context.Context, r *repo.Repository, opts IndexOptions, p Printer) (*IndexResult, error) {
	p = orDiscard(p)
	res := &IndexResult{}
	// The starting entries, merged per pack (restic < 0.10 could split a
	// pack's blobs over two index files).
	entries := make(map[blob.ID]map[uint32]index.BlobEntry)
	if !opts.ReadAllPacks {
		p.P("loading indexes...")
		if err := loadIndexes(ctx, r, entries, func(id blob.ID, err error) {
			p.E("removing invalid index %v: %v", id, err)
			res.InvalidIndexes = append(res.InvalidIndexes, id)
		}); err != nil {
			return res, err
		}
	}
	sizeFromIndex := make(map[blob.ID]int64, len(entries))
	for id, blobs := range entries {
		sizeFromIndex[id] = pack.Size(packBlobs(blobs))
	}

	p.P("getting pack files to read...")
	toRead := make(map[blob.ID]int64)
	drop := make(map[blob.ID]bool)
	err := r.List(ctx, backend.PackFile, func(id blob.ID, size int64) error {
		want, ok := sizeFromIndex[id]
		switch {
		case !ok:
			p.E("adding pack file to index %v", id)
			res.Added = append(res.Added, id)
		case want != size:
			p.E("reindexing pack file %v with unexpected size %v instead of %v", id, size, want)
			res.Reindexed = append(res.Reindexed, id)
		}
		if !ok || want != size {
			toRead[id] = size
			drop[id] = true
		}
		delete(sizeFromIndex, id)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("list packs: %w", err)
	}
	for _, id := range sortedKeys(sizeFromIndex) {
		p.E("removing not found pack file %v", id)
		res.Missing = append(res.Missing, id)
		drop[id] = true
	}

	var add []index.PackEntry
	for id, blobs := range entries {
		if !drop[id] {
			add = append(add, index.PackEntry{ID: id, Blobs: sortedBlobs(blobs)})
		}
	}
	if len(toRead) > 0 {
		p.P("reading pack files")
		read, invalid, err := readHeaders(ctx, r, toRead, opts.PackProgress)
		if err != nil {
			return res, err
		}
		for _, id := range invalid {
			p.V("skipped incomplete pack file: %v", id)
		}
		res.Skipped = invalid
		add = append(add, read...)
	}

	p.P("rebuilding index")
	ids, err := r.RewriteIndex(ctx, repo.RewriteIndexOptions{
		FromScratch: true,
		Add:         add,
		Progress: func(pr repo.RewriteIndexProgress) {
			if pr.Deleted == 0 {
				return
			}
			if pr.LastDeleteErr != nil {
				p.VV("failed to remove index %v: %v", pr.LastDeleted, pr.LastDeleteErr)
			} else {
				p.VV("removed index %v", pr.LastDeleted)
			}
		},
	})
	res.NewIndexes = ids
	if err != nil {
		return res, err
	}
	return res, nil
}

// loadIndexes reads every index file into entries, passing the ones that fail
// to bad. Only listing the files and cancellation are errors.
func loadIndexes(ctx context.Context, r *repo.Repository, entries map[blob.ID]map[uint32]index.BlobEntry, bad func(blob.ID, error)) error {
	var ids []blob.ID
	if err := r.List(ctx, backend.IndexFile, func(id blob.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return fmt.Errorf("list index files: %w", err)
	}
	slices.SortFunc(ids, blob.ID.Compare)
	files := make([]*index.File, len(ids))
	errs := make([]error, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(max(2, r.Backend().Connections())))
	for i, id := range ids {
		g.Go(func() error {
			files[i], errs[i] = r.LoadIndexFile(gctx, id)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, id := range ids {
		if errs[i] != nil {
			bad(id, errs[i])
			continue
		}
		for _, pe := range files[i].Packs {
			m := entries[pe.ID]
			if m == nil {
				m = make(map[uint32]index.BlobEntry, len(pe.Blobs))
				entries[pe.ID] = m
			}
			for _, b := range pe.Blobs {
				m[b.Offset] = b
			}
		}
	}
	return nil
}

// readHeaders reads the headers of the packs with bounded concurrency. A pack
// whose header cannot be read is returned in invalid, as restic skips it.
func readHeaders(ctx context.Context, r *repo.Repository, packs map[blob.ID]int64, progress func(done, total int)) (read []index.PackEntry, invalid []blob.ID, err error) {
	be := r.Backend()
	var mu sync.Mutex
	done := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(max(1, be.Connections())))
	for _, id := range sortedKeys(packs) {
		size := packs[id]
		g.Go(func() error {
			blobs, err := r.ListPack(gctx, id, size)
			if gctx.Err() != nil {
				return gctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				invalid = append(invalid, id)
			} else {
				read = append(read, index.NewPackEntry(id, blobs))
			}
			done++
			if progress != nil {
				progress(done, len(packs))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	slices.SortFunc(invalid, blob.ID.Compare)
	return read, invalid, nil
}

func packBlobs(m map[uint32]index.BlobEntry) []pack.Blob {
	pe := index.PackEntry{Blobs: sortedBlobs(m)}
	return pe.PackBlobs()
}

func sortedBlobs(m map[uint32]index.BlobEntry) []index.BlobEntry {
	out := make([]index.BlobEntry, 0, len(m))
	for _, b := range m {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b index.BlobEntry) int { return int(int64(a.Offset) - int64(b.Offset)) })
	return out
}

func sortedKeys[V any](m map[blob.ID]V) []blob.ID {
	out := make([]blob.ID, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.SortFunc(out, blob.ID.Compare)
	return out
}
