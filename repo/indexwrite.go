package repo

import (
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
//  4. the in-memory index becomes what the new files list: changed in place
//     (dropped and replaced packs removed, added ones added), or, with
//     FromScratch, replaced by one built from the new files.
//
// The new files are encoded one at a time per connection straight from the
// in-memory index, so the rewrite needs little memory beyond the index.
//
// Between 2 and 3 the repository lists some packs twice, which every reader
// (restic included) accepts. If a deletion fails, RewriteIndex returns an
// error and the in-memory index is left as it was; the old files that
// remain may still list dropped packs, so the caller must not delete those
// packs (prune stops there). Running RewriteIndex again finishes the job.
//
// The caller must hold the exclusive lock and nothing else may use r
// meanwhile: no open BlobWriter (flush it first, its packs are then in the
// in-memory index) and no reader using the *index.Index from r.Index()
// (which is a new object afterwards with FromScratch).
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

	plan := r.newIndexPlan(opts)
	var prog progressState
	prog.fn = opts.Progress
	prog.p.ToSave = len(plan.files)

	// Each file's entries are materialised, encoded and saved in its own
	// goroutine and then dropped: at most Connections() files are in
	// memory, never a second copy of the whole index.
	ids := make([]blob.ID, len(plan.files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(max(1, r.be.Connections())))
	for i := range plan.files {
		g.Go(func() error {
			f := plan.file(i)
			buf, err := f.Encode()
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

	r.indexMu.Lock()
	defer r.indexMu.Unlock()
	if opts.FromScratch {
		idx := index.New()
		for i := range plan.files {
			f := plan.file(i)
			idx.AddFile(ids[i], &f)
		}
		r.idx = idx
	} else {
		// The in-memory index becomes what the new files list, in place:
		// dropped and replaced packs go, added ones come in.
		var gone []blob.ID
		for _, id := range r.idx.Packs() {
			if plan.replaced[id] || (opts.Drop != nil && opts.Drop(id)) {
				gone = append(gone, id)
			}
		}
		r.idx.DropPacks(gone)
		for _, p := range plan.packs {
			if p.add >= 0 {
				r.idx.AddPack(p.id, opts.Add[p.add].PackBlobs())
			}
		}
		fileOf := make(map[blob.ID]blob.ID)
		for i, f := range plan.files {
			for _, p := range plan.packs[f.from:f.to] {
				fileOf[p.id] = ids[i]
			}
		}
		r.idx.SetIndexFiles(func(pack blob.ID) []blob.ID {
			if id, ok := fileOf[pack]; ok {
				return []blob.ID{id}
			}
			return nil
		})
	}
	r.indexLoaded = true
	return ids, nil
}

// indexPlan is the content of the new index files: packs sorted by ID, each
// either a group of the in-memory index or an added entry, cut into files
// of about indexMaxBlobs blobs.
type indexPlan struct {
	groups   *index.PackGroups
	add      []index.PackEntry
	packs    []planPack
	files    []planFile
	replaced map[blob.ID]bool
}

type planPack struct {
	id    blob.ID
	group int // index into groups, or -1
	add   int // index into add, or -1
}

type planFile struct{ from, to int } // packs[from:to]

// newIndexPlan groups the packs of the new index into files of about
// indexMaxBlobs blobs (a pack is never split). Packs are sorted by ID and
// blobs by offset, so the same state always gives the same files.
func (r *Repository) newIndexPlan(opts RewriteIndexOptions) *indexPlan {
	pl := &indexPlan{add: opts.Add, replaced: make(map[blob.ID]bool, len(opts.Add))}
	for _, p := range opts.Add {
		pl.replaced[p.ID] = true
	}
	var counts []int
	if !opts.FromScratch {
		pl.groups = r.idx.GroupByPack(func(id blob.ID) bool {
			return pl.replaced[id] || (opts.Drop != nil && opts.Drop(id))
		})
		for i := range pl.groups.Len() {
			pl.packs = append(pl.packs, planPack{id: pl.groups.ID(i), group: i, add: -1})
			counts = append(counts, pl.groups.Count(i))
		}
	}
	// Add may name a pack twice: the last entry wins, as it did when
	// entries were collected into a map.
	last := make(map[blob.ID]int, len(opts.Add))
	for i, p := range opts.Add {
		last[p.ID] = i
	}
	for i, p := range opts.Add {
		if last[p.ID] == i {
			pl.packs = append(pl.packs, planPack{id: p.ID, group: -1, add: i})
			counts = append(counts, len(p.Blobs))
		}
	}
	order := make([]int, len(pl.packs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return pl.packs[a].id.Compare(pl.packs[b].id) })
	sorted := make([]planPack, len(order))
	n, from := 0, 0
	for i, o := range order {
		sorted[i] = pl.packs[o]
		n += counts[o]
		if n >= indexMaxBlobs {
			pl.files = append(pl.files, planFile{from, i + 1})
			from, n = i+1, 0
		}
	}
	if from < len(sorted) {
		pl.files = append(pl.files, planFile{from, len(sorted)})
	}
	pl.packs = sorted
	return pl
}

// file materialises new index file i.
func (pl *indexPlan) file(i int) index.File {
	f := index.File{Packs: make([]index.PackEntry, 0, pl.files[i].to-pl.files[i].from)}
	for _, p := range pl.packs[pl.files[i].from:pl.files[i].to] {
		if p.group >= 0 {
			f.Packs = append(f.Packs, pl.groups.Entry(p.group))
			continue
		}
		// Add is the caller's: copy, so sorting does not touch it.
		blobs := index.SortBlobs(slices.Clone(pl.add[p.add].Blobs))
		f.Packs = append(f.Packs, index.PackEntry{ID: p.id, Blobs: blobs})
	}
	return f
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

// UnloadIndex empties the in-memory index and marks it not loaded, so that
// the next EnsureIndex loads it again from the index files. Prune calls it
// when it fails after dropping packs from the in-memory index that the
// index files still list. The caller must hold the only reference to r.
func (r *Repository) UnloadIndex() {
	r.indexMu.Lock()
	defer r.indexMu.Unlock()
	r.idx = index.New()
	r.indexLoaded = false
}

// IndexMemoryUse returns the bytes the in-memory index holds or, while it is
// empty (not loaded yet), an estimate of what loading it will take, from the
// size of the index files: their JSON is compressed in a version 2
// repository (about 45 bytes a blob against 60 in memory) and plain in
// version 1 (about 120). Prune and check size a soft memory limit from it.
func (r *Repository) IndexMemoryUse(ctx context.Context) (int64, error) {
	if n := r.idx.MemoryUse(); n > 0 {
		return n, nil
	}
	var files int64
	if err := r.List(ctx, backend.IndexFile, func(_ blob.ID, n int64) error {
		files += n
		return nil
	}); err != nil {
		return 0, fmt.Errorf("list index files: %w", err)
	}
	if r.cfg.Version >= 2 {
		return files * 3 / 2, nil
	}
	return files / 2, nil
}
