package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
)

// Run restores the snapshot sn, or its directory subfolder ("" or "/" for
// all of it), into opts.Target. The contents of the restored directory go
// directly into the target, like `restic restore ID:subfolder`.
//
// Run takes a shared repository lock (opts.Lock, or r.Lock with restic's
// defaults) unless opts.NoLock is set, and loads the index if needed. Entries that cannot be restored are listed in the
// Result and the restore goes on; the error then wraps ErrIncomplete. Any
// other error (bad options, no target, lock or index failure, a cancelled
// ctx) stops the restore and comes with a nil or partial Result.
func Run(ctx context.Context, r *repo.Repository, sn *repo.Snapshot, subfolder string, opts Options) (*Result, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if sn == nil || sn.Tree == nil || sn.Tree.IsNull() {
		return nil, errors.New("restore: snapshot has no tree")
	}
	target, err := filepath.Abs(opts.Target)
	if err != nil {
		return nil, fmt.Errorf("restore: target %q: %w", opts.Target, err)
	}
	sel, err := newSelector(&opts)
	if err != nil {
		return nil, err
	}
	if opts.Delete && target == "/" && len(sel.include) == 0 && len(sel.exclude) == 0 {
		return nil, errors.New("restore: deleting in target / needs an include or exclude pattern")
	}
	xsel, err := newXattrSelector(&opts)
	if err != nil {
		return nil, err
	}
	rs := newRestorer(r, opts, target, sel, xsel)

	// Taking a lock means waiting (200 ms, like restic) to see whether a
	// competing lock appears. Meanwhile the index and the trees are read:
	// only reads, and nothing is written to the target before the lock is
	// confirmed. If the lock is granted, no exclusive operation (prune) can
	// have changed the repository while they ran, since it would have had
	// to hold its own lock across that time and this one would have failed.
	var locked chan lockResult
	// A refused lock stops the reading, and a failed read stops a lock
	// still waiting (--retry-lock): neither result is worth waiting for.
	loadCtx, stopLoad := context.WithCancelCause(ctx)
	defer stopLoad(nil)
	lockCtx, stopLock := context.WithCancelCause(ctx)
	defer stopLock(nil)
	if !opts.NoLock {
		locked = make(chan lockResult, 1)
		lock := opts.Lock
		if lock == nil {
			lock = func(ctx context.Context) (context.Context, func(), error) {
				lctx, held, err := r.Lock(ctx, false, repo.LockOptions{})
				if err != nil {
					return nil, nil, err
				}
				return lctx, func() { _ = held.Unlock() }, nil
			}
		}
		go func() {
			lctx, unlock, err := lock(lockCtx)
			if err != nil {
				stopLoad(err)
			}
			locked <- lockResult{lctx, unlock, err}
		}()
	}
	planErr := rs.load(loadCtx, sn, subfolder)
	loadStopped := loadCtx.Err() != nil
	if planErr != nil {
		stopLock(planErr)
	}
	if locked != nil {
		l := <-locked
		if l.err != nil && (planErr == nil || loadStopped) {
			return nil, fmt.Errorf("restore: lock repository: %w", l.err)
		}
		if l.err == nil {
			defer l.unlock()
			ctx = l.ctx
		}
	}
	if planErr != nil {
		return nil, planErr
	}
	if err := rs.run(ctx); err != nil {
		return rs.result(), err
	}
	res := rs.result()
	if n := len(res.Failures); n > 0 {
		return res, fmt.Errorf("restore: %d entries could not be restored: %w", n, ErrIncomplete)
	}
	return res, nil
}

// findSubtree follows dir, a slash-separated path, from the tree root down
// and returns the ID of the directory's tree.
func findSubtree(ctx context.Context, r *repo.Repository, root blob.ID, dir string) (blob.ID, error) {
	id := root
	sofar := ""
	for _, name := range strings.Split(path.Clean(dir), "/") {
		if name == "" || name == "." {
			continue
		}
		sofar = path.Join(sofar, name)
		t, err := r.LoadTree(ctx, id)
		if err != nil {
			return blob.ID{}, fmt.Errorf("path %s: %w", sofar, err)
		}
		n := t.Find(name)
		switch {
		case n == nil:
			return blob.ID{}, fmt.Errorf("path %s: not found", sofar)
		case n.Type != "dir" || n.Subtree == nil:
			return blob.ID{}, fmt.Errorf("path %s: not a directory", sofar)
		}
		id = *n.Subtree
	}
	return id, nil
}

// restorer holds one restore's state: the plan, the counters and the
// failures. Its phases run one after the other (see the package doc);
// inside each phase the work is spread over workers.
type restorer struct {
	r       *repo.Repository
	opts    Options
	target  string
	sel     *selector
	xsel    *xattrSelector
	workers int
	euid    int
	egid    int

	// The plan. dirs holds the directories level by level (the restore
	// root alone in dirs[0]); files and others are in tree order.
	dirs   [][]*dirEntry
	files  []*fileEntry
	others []*otherEntry
	links  []*otherEntry
	// noDelete is set when a node was refused: restic then turns --delete
	// off, since it can no longer tell what belongs in a directory.
	noDelete bool

	filesRestored, bytesRestored atomic.Int64
	filesSkipped, bytesSkipped   atomic.Int64
	dirsDone, othersDone, linked atomic.Int64
	deleted, verified, warnings  atomic.Int64

	mu       sync.Mutex
	failures []Failure
}

func newRestorer(r *repo.Repository, opts Options, target string, sel *selector, xsel *xattrSelector) *restorer {
	return &restorer{
		r:       r,
		opts:    opts,
		target:  target,
		sel:     sel,
		xsel:    xsel,
		workers: opts.workers(r.Backend().Connections()),
		euid:    os.Geteuid(),
		egid:    os.Getegid(),
	}
}

type lockResult struct {
	ctx    context.Context
	unlock func()
	err    error
}

// load reads the index and the trees and makes the plan; it only reads the
// repository.
func (rs *restorer) load(ctx context.Context, sn *repo.Snapshot, subfolder string) error {
	if err := rs.r.EnsureIndex(ctx, nil); err != nil {
		return fmt.Errorf("restore: load index: %w", err)
	}
	rootID, err := findSubtree(ctx, rs.r, *sn.Tree, subfolder)
	if err != nil {
		return fmt.Errorf("restore: snapshot %s: %w", sn.ID().Str(), err)
	}
	return rs.plan(ctx, rootID)
}

// run carries out the plan.
func (rs *restorer) run(ctx context.Context) error {
	if err := rs.makeDirs(ctx); err != nil {
		return err
	}
	if err := rs.checkExisting(ctx); err != nil {
		return err
	}
	if err := rs.restoreContent(ctx); err != nil {
		return err
	}
	if err := rs.restoreOthers(ctx); err != nil {
		return err
	}
	if err := rs.finishDirs(ctx); err != nil {
		return err
	}
	if rs.opts.Verify {
		if err := rs.verify(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (rs *restorer) result() *Result {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return &Result{
		FilesRestored: rs.filesRestored.Load(),
		BytesRestored: rs.bytesRestored.Load(),
		FilesSkipped:  rs.filesSkipped.Load(),
		BytesSkipped:  rs.bytesSkipped.Load(),
		Dirs:          rs.dirsDone.Load(),
		Others:        rs.othersDone.Load(),
		HardLinks:     rs.linked.Load(),
		Deleted:       rs.deleted.Load(),
		Verified:      rs.verified.Load(),
		Warnings:      rs.warnings.Load(),
		Failures:      append([]Failure(nil), rs.failures...),
	}
}

// fail records that the entry at loc could not be restored.
func (rs *restorer) fail(loc string, err error) {
	rs.mu.Lock()
	rs.failures = append(rs.failures, Failure{Path: loc, Err: err})
	rs.mu.Unlock()
	if p := rs.opts.Progress; p != nil {
		p.Errors.Add(1)
	}
}

// warn reports a problem that leaves the entry usable.
func (rs *restorer) warn(loc string, err error) {
	rs.warnings.Add(1)
	if rs.opts.Warn != nil {
		rs.opts.Warn(loc, err)
	}
}

// forEach calls fn for every index in [0, n) on up to workers goroutines;
// each goroutine first builds its own scratch state with newState. An error
// from fn stops everything (per-entry problems are recorded, not returned).
func forEach[S any](ctx context.Context, workers, n int, newState func() S, fn func(ctx context.Context, s S, i int) error) error {
	if n == 0 {
		return ctx.Err()
	}
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range min(workers, n) {
		g.Go(func() error {
			s := newState()
			for {
				if err := gctx.Err(); err != nil {
					return err
				}
				i := int(next.Add(1) - 1)
				if i >= n {
					return nil
				}
				if err := fn(gctx, s, i); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

func noState() struct{} { return struct{}{} }
