package check

import (
	"context"
	"fmt"
	"io"
	"path"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

// treeLoaders bounds concurrent tree loads: small reads that wait on the
// backend more than on the CPU.
const treeLoaders = 8

type treeRef struct {
	id       blob.ID
	snapshot blob.ID
	path     string
}

// checkStructure loads every snapshot and walks its trees, each tree once,
// checking that every subtree and data blob is indexed.
func (c *checker) checkStructure(ctx context.Context) error {
	var roots []treeRef
	var snapErrs []Problem
	if c.opts.Select != nil {
		c.used = make(map[blob.Handle]struct{})
		sns, err := c.opts.Select(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			snapErrs = append(snapErrs, Problem{Kind: KindSnapshot, Errs: []error{err}})
			sns = nil
		}
		for _, sn := range sns {
			roots = append(roots, treeRef{id: *sn.Tree, snapshot: sn.ID(), path: "/"})
		}
	} else {
		err := c.r.ForEachSnapshot(ctx, func(id blob.ID, sn *repo.Snapshot, err error) error {
			if err != nil {
				snapErrs = append(snapErrs, Problem{Kind: KindSnapshot, Snapshot: id, Errs: []error{err}})
				return nil
			}
			roots = append(roots, treeRef{id: *sn.Tree, snapshot: id, path: "/"})
			return nil
		})
		if err != nil {
			return fmt.Errorf("load snapshots: %w", err)
		}
	}
	for _, p := range snapErrs {
		c.emit(p)
	}

	// Breadth first, one level at a time, so that memory is the set of
	// seen trees plus one level, never a deep stack of loaded trees.
	seen := make(map[blob.ID]struct{})
	level := make([]treeRef, 0, len(roots))
	for _, t := range roots {
		if _, ok := seen[t.id]; !ok {
			seen[t.id] = struct{}{}
			level = append(level, t)
		}
	}
	for len(level) > 0 {
		if c.used != nil {
			for _, t := range level {
				c.used[blob.Handle{ID: t.id, Type: blob.TreeBlob}] = struct{}{}
			}
		}
		var mu sync.Mutex
		var next []treeRef
		var problems []Problem
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(treeLoaders)
		for _, ref := range level {
			g.Go(func() error {
				subs, errs := c.checkTree(gctx, ref)
				if gctx.Err() != nil {
					return gctx.Err()
				}
				mu.Lock()
				defer mu.Unlock()
				if len(errs) > 0 {
					problems = append(problems, Problem{Kind: KindTree, Tree: ref.id, Snapshot: ref.snapshot, Path: ref.path, Errs: errs})
				}
				for _, s := range subs {
					if _, ok := seen[s.id]; !ok {
						seen[s.id] = struct{}{}
						next = append(next, s)
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		for _, p := range problems {
			c.emit(p)
		}
		level = next
	}
	return ctx.Err()
}

// checkTree loads one tree and checks its nodes like restic's checker: a
// file needs a non-nil content list of indexed data blobs, a directory a
// subtree, and every node a known type and a name.
func (c *checker) checkTree(ctx context.Context, ref treeRef) (subs []treeRef, errs []error) {
	buf, err := c.loadTreeBlob(ctx, ref.id)
	if err != nil {
		return nil, []error{err}
	}
	t, err := tree.Decode(buf)
	if err != nil {
		return nil, []error{treeErr(ref.id, "failed to decode tree %v: %v", ref.id, err)}
	}
	idx := c.r.Index()
	for _, n := range t.Nodes() {
		switch n.Type {
		case tree.TypeFile:
			if n.Content == nil {
				errs = append(errs, treeErr(ref.id, "file %q has nil blob list", n.Name))
			}
			for i, id := range n.Content {
				if id.IsNull() {
					errs = append(errs, treeErr(ref.id, "file %q blob %d has null ID", n.Name, i))
					continue
				}
				if !idx.Has(blob.Handle{ID: id, Type: blob.DataBlob}) {
					errs = append(errs, treeErr(ref.id, "file %q blob %v not found in index", n.Name, id))
				}
			}
			if c.used != nil {
				c.usedMu.Lock()
				for _, id := range n.Content {
					if !id.IsNull() {
						c.used[blob.Handle{ID: id, Type: blob.DataBlob}] = struct{}{}
					}
				}
				c.usedMu.Unlock()
			}
		case tree.TypeDir:
			switch {
			case n.Subtree == nil:
				errs = append(errs, treeErr(ref.id, "dir node %q has no subtree", n.Name))
			case n.Subtree.IsNull():
				errs = append(errs, treeErr(ref.id, "dir node %q subtree id is null", n.Name))
			default:
				subs = append(subs, treeRef{id: *n.Subtree, snapshot: ref.snapshot, path: path.Join(ref.path, n.Name)})
			}
		case tree.TypeSymlink, tree.TypeSocket, tree.TypeCharDev, tree.TypeDev, tree.TypeFifo:
		default:
			errs = append(errs, treeErr(ref.id, "node %q with invalid type %q", n.Name, n.Type))
		}
		if n.Name == "" {
			errs = append(errs, treeErr(ref.id, "node with empty name"))
		}
	}
	return subs, errs
}

func treeErr(id blob.ID, format string, args ...any) error {
	return fmt.Errorf("tree %v: %s", id, fmt.Sprintf(format, args...))
}

// loadTreeBlob loads a tree blob from any of its stored copies; the error
// is the last copy's, in restic's words.
func (c *checker) loadTreeBlob(ctx context.Context, id blob.ID) ([]byte, error) {
	h := blob.Handle{ID: id, Type: blob.TreeBlob}
	locs := c.r.Index().Lookup(h)
	if len(locs) == 0 {
		return nil, fmt.Errorf("id %v not found in repository", id)
	}
	var lastErr error
	for _, loc := range locs {
		sealed := make([]byte, loc.Length)
		bh := backend.Handle{Type: backend.PackFile, Name: loc.Pack.String(), IsMetadata: true}
		err := c.r.Backend().Load(ctx, bh, int(loc.Length), int64(loc.Offset), func(rd io.Reader) error {
			_, err := io.ReadFull(rd, sealed)
			return err
		})
		if err != nil {
			lastErr = err
			continue
		}
		var scratch []byte
		data, err := c.openBlob(loc.Pack, loc.Blob, sealed, &scratch)
		if err != nil {
			lastErr = err
			continue
		}
		return data, nil
	}
	return nil, lastErr
}
