// Package check verifies a repository the way `restic check` does: every
// index file decodes, every indexed pack exists with the size the index
// implies, every snapshot loads and every tree and data blob it references
// is indexed, and, when asked, every pack's content hashes to its name and
// every blob in it decrypts to its ID.
//
// Like restic, packs that no index lists and packs listed twice are hints,
// not errors: they waste space but lose nothing.
package check

import (
	"context"
	"errors"
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

// Kind says which part of the check found a problem.
type Kind int

// Kinds of problems.
const (
	// KindIndex: an index file failed to load or decode (the check stops
	// after the index stage then, like restic), or (with Pack set) two index
	// files disagree about a pack (an error) or both list it (a hint).
	KindIndex Kind = iota + 1
	// KindPack: an indexed pack is missing or has the wrong size, or (hint)
	// a pack is in no index.
	KindPack
	// KindSnapshot: a snapshot file failed to load or decode.
	KindSnapshot
	// KindTree: a tree failed to load or decode, or references something
	// that is not indexed.
	KindTree
	// KindData: reading a pack's content (ReadData) found damage.
	KindData
)

// Problem is one finding. Hint problems do not make a repository damaged.
type Problem struct {
	Kind Kind
	Hint bool
	// Pack is the pack concerned (KindPack, KindData, some KindIndex).
	Pack blob.ID
	// Snapshot and Tree are set for KindSnapshot and KindTree; Path is the
	// path of Tree inside the first snapshot that reached it.
	Snapshot blob.ID
	Tree     blob.ID
	Path     string
	// Orphaned marks a pack that is in no index; Broken a pack whose
	// content is damaged (it should be removed by `repair packs`);
	// Duplicate a pack listed by several index files; Mixed a pack holding
	// both tree and data blobs.
	Orphaned, Broken, Duplicate, Mixed bool
	// Errs are the individual errors (one per bad node for KindTree).
	Errs []error
}

// Error renders the problem in restic's words.
func (p Problem) Error() string {
	switch p.Kind {
	case KindTree:
		return fmt.Sprintf("tree %v: %v", p.Tree, p.Errs)
	case KindData:
		if p.Broken {
			return fmt.Sprintf("pack %v contains %d errors: %v", p.Pack, len(p.Errs), p.Errs)
		}
		return errors.Join(p.Errs...).Error()
	case KindPack:
		return fmt.Sprintf("pack %v: %v", p.Pack, errors.Join(p.Errs...))
	case KindIndex:
		if p.Mixed {
			return fmt.Sprintf("pack %v %v", p.Pack.Str(), errors.Join(p.Errs...))
		}
		if !p.Pack.IsNull() {
			return fmt.Sprintf("pack %v %v", p.Pack, errors.Join(p.Errs...))
		}
	}
	return errors.Join(p.Errs...).Error()
}

// PackFilter picks the packs whose data is read from all indexed packs
// (ID → size). It may return its argument.
type PackFilter func(packs map[blob.ID]int64) map[blob.ID]int64

// Options select what is checked.
type Options struct {
	// ReadData downloads every indexed pack and verifies its content.
	ReadData bool
	// ReadFilter, when ReadData is set, limits the packs read.
	ReadFilter PackFilter
	// Workers bounds concurrent pack reads (default: the backend's
	// connection count, at most 2 for the CPU-bound decryption).
	Workers int
	// Select, when set, limits the check to some snapshots, like restic's
	// check with snapshot IDs or --host/--tag/--path: only their trees are
	// walked, and ReadData reads only the packs holding a blob they
	// reference (ReadFilter then picks among those). An error from Select
	// is reported as a snapshot problem and no tree is checked, as restic
	// does.
	Select func(ctx context.Context) ([]*repo.Snapshot, error)
}

// Report sums up a check.
type Report struct {
	Errors int // number of error problems (a tree problem counts each error)
	Hints  int
	// IndexDamaged: the check stopped after the index stage.
	IndexDamaged bool
	// OrphanedPacks counts packs in no index.
	OrphanedPacks int
	// BrokenPacks are packs whose content or size is damaged, sorted.
	BrokenPacks []blob.ID
	// PacksRead is the number of packs whose data was read.
	PacksRead int
}

// OK reports whether no errors were found.
func (r *Report) OK() bool { return r.Errors == 0 }

// MemoryLimit returns a soft memory limit (for runtime/debug.SetMemoryLimit)
// for checking r with opts, to be set before Run: the in-memory index (as
// estimated before it is loaded, see repo.Repository.IndexMemoryUse) with a
// quarter of it and 40 MiB above, plus, when reading data, room for a large
// blob per reader (packs stream by). Without a limit the collector lets
// garbage grow the heap to (1 + GOGC/100) times the live heap.
func MemoryLimit(ctx context.Context, r *repo.Repository, opts Options) (int64, error) {
	size, err := r.IndexMemoryUse(ctx)
	if err != nil {
		return 0, err
	}
	limit := size*5/4 + 40<<20
	if opts.ReadData {
		limit += int64(readers(r, opts)) * 8 << 20
	}
	return limit, nil
}

// Run checks r. Every problem is passed to report (never concurrently) as it
// is found; the returned error is only for failures that stop the check
// (cancellation, a backend that cannot list files), not for damage.
func Run(ctx context.Context, r *repo.Repository, opts Options, report func(Problem)) (*Report, error) {
	c := &checker{r: r, opts: opts, report: report, rep: &Report{}, broken: map[blob.ID]bool{}}
	if err := c.run(ctx); err != nil {
		return c.rep, err
	}
	for id := range c.broken {
		c.rep.BrokenPacks = append(c.rep.BrokenPacks, id)
	}
	slices.SortFunc(c.rep.BrokenPacks, blob.ID.Compare)
	return c.rep, ctx.Err()
}

type checker struct {
	r      *repo.Repository
	opts   Options
	report func(Problem)
	rep    *Report
	broken map[blob.ID]bool

	// packs maps each indexed pack to what the index says about it.
	packs map[blob.ID]*packInfo

	// used collects the blobs the selected snapshots reference (only with
	// Options.Select), to know which packs ReadData reads.
	usedMu sync.Mutex
	used   map[blob.Handle]struct{}
}

type packInfo struct {
	size  int64 // size implied by the index entry
	blobs int
}

func (c *checker) emit(p Problem) {
	if p.Hint {
		c.rep.Hints++
	} else if p.Kind == KindTree {
		c.rep.Errors += len(p.Errs)
	} else {
		c.rep.Errors++
	}
	if p.Broken {
		c.broken[p.Pack] = true
	}
	if p.Orphaned {
		c.rep.OrphanedPacks++
	}
	if c.report != nil {
		c.report(p)
	}
}

func (c *checker) run(ctx context.Context) error {
	if err := c.loadIndex(ctx); err != nil {
		return err
	}
	if c.rep.IndexDamaged {
		return nil
	}
	if err := c.checkPacks(ctx); err != nil {
		return err
	}
	if err := c.checkStructure(ctx); err != nil {
		return err
	}
	if c.opts.ReadData {
		return c.readData(ctx)
	}
	return nil
}

// loadIndex loads every index file on its own, so that each damaged one is
// named, and adds the good ones to the repository's index.
func (c *checker) loadIndex(ctx context.Context) error {
	var ids []blob.ID
	if err := c.r.List(ctx, backend.IndexFile, func(id blob.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return fmt.Errorf("list index files: %w", err)
	}
	// Load a few files in parallel, then go through them in listing order
	// so that the messages do not depend on timing; only that many decoded
	// files are in memory at once (all of them together are as large as
	// the index itself).
	workers := int(max(2, c.r.Backend().Connections()))
	files := make([]*index.File, workers)
	loadErrs := make([]error, workers)
	c.packs = make(map[blob.ID]*packInfo)
	inFiles := make(map[blob.ID][]blob.ID)
	idx := c.r.Index()
	for start := 0; start < len(ids); start += workers {
		batch := ids[start:min(start+workers, len(ids))]
		g, gctx := errgroup.WithContext(ctx)
		for i, id := range batch {
			g.Go(func() error {
				files[i], loadErrs[i] = c.r.LoadIndexFile(gctx, id)
				return gctx.Err()
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		for i, id := range batch {
			f, err := files[i], loadErrs[i]
			files[i] = nil // the index keeps what it needs
			if err != nil {
				c.rep.IndexDamaged = true
				c.emit(Problem{Kind: KindIndex, Errs: []error{err}})
				continue
			}
			c.addIndexFile(id, f, inFiles)
			idx.AddFile(id, f)
		}
	}
	for packID, files := range inFiles {
		if len(files) > 1 {
			c.emit(Problem{Kind: KindIndex, Pack: packID, Hint: true, Duplicate: true,
				Errs: []error{fmt.Errorf("contained in several indexes: %v", files)}})
		}
	}
	return nil
}

// addIndexFile records the packs of index file id, reporting mixed packs
// and packs that two files describe differently.
func (c *checker) addIndexFile(id blob.ID, f *index.File, inFiles map[blob.ID][]blob.ID) {
	for i := range f.Packs {
		pe := &f.Packs[i]
		if mixed(pe) {
			c.emit(Problem{Kind: KindIndex, Pack: pe.ID, Hint: true, Mixed: true,
				Errs: []error{errors.New("contains a mix of tree and data blobs")}})
		}
		size, n := pack.Size(pe.PackBlobs()), len(pe.Blobs)
		if pi, ok := c.packs[pe.ID]; ok {
			if pi.size != size || pi.blobs != n {
				c.emit(Problem{Kind: KindIndex, Pack: pe.ID, Broken: true,
					Errs: []error{fmt.Errorf("has different data in indexes: %v", append(inFiles[pe.ID], id))}})
			}
		} else {
			c.packs[pe.ID] = &packInfo{size: size, blobs: n}
		}
		inFiles[pe.ID] = append(inFiles[pe.ID], id)
	}
}

// checkPacks compares the indexed packs with the packs in the backend.
func (c *checker) checkPacks(ctx context.Context) error {
	stored := make(map[blob.ID]int64)
	if err := c.r.List(ctx, backend.PackFile, func(id blob.ID, size int64) error {
		stored[id] = size
		return nil
	}); err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	ids := make([]blob.ID, 0, len(c.packs))
	for id := range c.packs {
		ids = append(ids, id)
	}
	sortIDs(ids)
	for _, id := range ids {
		want := c.packs[id].size
		got, ok := stored[id]
		delete(stored, id)
		switch {
		case !ok:
			c.emit(Problem{Kind: KindPack, Pack: id, Errs: []error{errors.New("does not exist")}})
		case got != want:
			c.emit(Problem{Kind: KindPack, Pack: id, Broken: true,
				Errs: []error{fmt.Errorf("unexpected file size: got %d, expected %d", got, want)}})
		}
	}
	orphans := make([]blob.ID, 0, len(stored))
	for id := range stored {
		orphans = append(orphans, id)
	}
	sortIDs(orphans)
	for _, id := range orphans {
		c.emit(Problem{Kind: KindPack, Pack: id, Hint: true, Orphaned: true,
			Errs: []error{errors.New("not referenced in any index")}})
	}
	return ctx.Err()
}

func sortIDs(ids []blob.ID) { slices.SortFunc(ids, blob.ID.Compare) }

func mixed(pe *index.PackEntry) bool {
	for _, b := range pe.Blobs {
		if b.Type != pe.Blobs[0].Type {
			return true
		}
	}
	return false
}
