package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
)

// RewriteIndexOptions say what the rewritten index holds. The zero value
// rewrites the in-memory index as it is (compacting many small index files
// into few full ones).
type RewriteIndexOptions struct {
	// Drop reports packs to leave out of the new index: packs prune is
	// about to delete, or packs repair found missing. nil drops nothing.
	Drop func(pack blob.ID) bool
	// Add lists packs to put into the new index, for example entries
	// rebuilt from pack headers or packs written by a repack that did not
	// go through a BlobWriter. An entry here replaces every entry the
	// in-memory index has for the same pack, so a pack whose old entries
	// are wrong is corrected by adding its rebuilt entry. Drop does not
	// apply to Add.
	Add []index.PackEntry
	// FromScratch ignores the in-memory index: the new index holds Add and
	// nothing else (repair index --read-all-packs). Without it, the
	// in-memory index must have been loaded.
	FromScratch bool
	// Progress, if set, is called after each new index file is saved
	// (saved of total) and after each old one is deleted (deleted of
	// obsolete). It may be called from several goroutines, never at once.
	Progress func(p RewriteIndexProgress)
}

// RewriteIndexProgress is the state of a RewriteIndex call.
type RewriteIndexProgress struct {
	Saved, ToSave     int
	Deleted, ToDelete int
	// LastDeleted is the old file deleted last and LastDeleteErr why that
	// failed (nil when it worked).
	LastDeleted   blob.ID
	LastDeleteErr error
}

// RewriteIndex replaces every index file of the repository with new ones that
// describe the in-memory index minus the Drop packs plus the Add packs (or
// only the Add packs, with FromScratch). It is the primitive that prune and
// repair index share.
//
// The order keeps the repository readable if the process dies at any point:
//  1. the index files present now are listed (including ones that failed to
//     load, so a corrupt file is replaced too);
//  2. all new index files are saved, each with at most 50000 blobs like
//     restic's (a pack is never split, so a file may exceed that by one
//     pack's blobs);
//  3. only then is every listed old file deleted;
//  4. the in-memory index is replaced by one built from the new files.
//
// Between 2 and 3 the repository lists some packs twice, which every reader
// (restic included) accepts. If a deletion fails, RewriteIndex returns an
// error and the in-memory index is left as it was; the old files that
// remain may still list dropped packs, so the caller must not delete those
// packs (prune stops there). Running RewriteIndex again finishes the job.
//
// The caller must hold the exclusive lock and nothing else may use r
// meanwhile: no open BlobWriter (flush it first, its packs are then in the
// in-memory index) and no reader holding the *index.Index from r.Index(),
// which is a new object afterwards.
//
// It returns the IDs of the new index files (none if the new index is
// empty: restic writes no empty index files either).
func (r *Repository) RewriteIndex(ctx context.Context, opts RewriteIndexOptions) ([]blob.ID, error) {
	if !opts.FromScratch {
		r.indexMu.Lock()
		loaded := r.indexLoaded
		r.indexMu.Unlock()
		if !loaded {
			return nil, errors.New("rewrite index: the index is not loaded")
		}
	}
	var old []blob.ID
	if err := r.List(ctx, backend.IndexFile, func(id blob.ID, _ int64) error {
		old = append(old, id)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("rewrite index: list index files: %w", err)
	}

	files := r.newIndexFiles(opts)
	var prog progressState
	prog.fn = opts.Progress
	prog.p.ToSave = len(files)

	ids := make([]blob.ID, len(files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(max(1, r.be.Connections())))
	for i := range files {
		g.Go(func() error {
			buf, err := files[i].Encode()
			if err != nil {
				return err
			}
			id, err := r.SaveUnpacked(gctx, backend.IndexFile, buf)
			if err != nil {
				return fmt.Errorf("rewrite index: %w", err)
			}
			ids[i] = id
			prog.update(func(p *RewriteIndexProgress) { p.Saved++ })
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	// A new file cannot have an old name (the ciphertext has a fresh
	// nonce), but never delete what was just written.
	obsolete := slices.DeleteFunc(old, func(id blob.ID) bool { return slices.Contains(ids, id) })
	prog.update(func(p *RewriteIndexProgress) { p.ToDelete = len(obsolete) })
	var mu sync.Mutex
	var errs []error
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(int(max(1, r.be.Connections())))
	for _, id := range obsolete {
		g.Go(func() error {
			err := r.be.Remove(gctx, backend.Handle{Type: backend.IndexFile, Name: id.String()})
			if errors.Is(err, fs.ErrNotExist) {
				// Someone (an earlier, interrupted run) removed it already.
				err = nil
			}
			if err != nil {
				err = fmt.Errorf("rewrite index: remove old index %s: %w", id.Str(), err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			prog.update(func(p *RewriteIndexProgress) {
				p.Deleted++
				p.LastDeleted, p.LastDeleteErr = id, err
			})
			// Keep deleting the others: each one removed is one fewer
			// stale file for the next run.
			return nil
		})
	}
	_ = g.Wait()
	if err := errors.Join(errs...); err != nil {
		return ids, err
	}
	if err := ctx.Err(); err != nil {
		return ids, err
	}

	idx := index.New()
	for i := range files {
		idx.AddFile(ids[i], &files[i])
	}
	r.indexMu.Lock()
	r.idx = idx
	r.indexLoaded = true
	r.indexMu.Unlock()
	return ids, nil
}

// newIndexFiles groups the packs of the new index into files of about
// indexMaxBlobs blobs. Packs are sorted by ID and blobs by offset, so the same
// state always gives the same files.
func (r *Repository) newIndexFiles(opts RewriteIndexOptions) []index.File {
	byPack := make(map[blob.ID][]index.BlobEntry)
	if !opts.FromScratch {
		replaced := make(map[blob.ID]bool, len(opts.Add))
		for _, p := range opts.Add {
			replaced[p.ID] = true
		}
		// Each yields one entry per stored location, possibly twice
		// (a pack added by a BlobWriter and then by its index file):
		// duplicates are dropped below.
		r.idx.Each(func(loc index.Location) bool {
			if replaced[loc.Pack] || (opts.Drop != nil && opts.Drop(loc.Pack)) {
				return true
			}
			byPack[loc.Pack] = append(byPack[loc.Pack], index.BlobEntry{
				ID: loc.ID, Type: loc.Type, Offset: loc.Offset, Length: loc.Length,
				UncompressedLength: loc.UncompressedLength,
			})
			return true
		})
	}
	for _, p := range opts.Add {
		// Add is the caller's: copy, so sorting below does not touch it.
		byPack[p.ID] = append(byPack[p.ID][:0:0], p.Blobs...)
	}
	packs := make([]blob.ID, 0, len(byPack))
	for id := range byPack {
		packs = append(packs, id)
	}
	slices.SortFunc(packs, func(a, b blob.ID) int { return bytes.Compare(a[:], b[:]) })

	var files []index.File
	var cur index.File
	n := 0
	for _, id := range packs {
		blobs := byPack[id]
		slices.SortFunc(blobs, func(a, b index.BlobEntry) int { return int(int64(a.Offset) - int64(b.Offset)) })
		blobs = slices.CompactFunc(blobs, func(a, b index.BlobEntry) bool { return a.Offset == b.Offset && a.ID == b.ID && a.Type == b.Type })
		cur.Packs = append(cur.Packs, index.PackEntry{ID: id, Blobs: blobs})
		n += len(blobs)
		if n >= indexMaxBlobs {
			files = append(files, cur)
			cur, n = index.File{}, 0
		}
	}
	if len(cur.Packs) > 0 {
		files = append(files, cur)
	}
	return files
}

// progressState serialises calls to a RewriteIndexOptions.Progress.
type progressState struct {
	mu sync.Mutex
	p  RewriteIndexProgress
	fn func(RewriteIndexProgress)
}

func (s *progressState) update(f func(*RewriteIndexProgress)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.p)
	if s.fn != nil {
		s.fn(s.p)
	}
}
