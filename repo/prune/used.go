package prune

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

// usedSet maps each used blob to the number of copies the index holds
// (saturating at 255); 0 until the index has been counted.
type usedSet map[blob.Handle]uint8

// findUsedBlobs loads every snapshot (but the ignored ones) and walks its
// trees, each tree once, adding the trees and the data blobs of files to a
// new set. Like restic, a snapshot or tree that cannot be loaded fails the
// prune: deciding with part of the references would delete used data.
func findUsedBlobs(ctx context.Context, r *repo.Repository, ignore map[blob.ID]struct{}, pr Printer) (usedSet, error) {
	var roots []blob.ID
	pr.P("loading all snapshots...")
	err := r.ForEachSnapshot(ctx, func(id blob.ID, sn *repo.Snapshot, err error) error {
		if _, skip := ignore[id]; skip {
			return nil
		}
		if err != nil {
			return err
		}
		if sn.Tree == nil {
			return fmt.Errorf("snapshot %s has no tree", id.Str())
		}
		roots = append(roots, *sn.Tree)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed loading snapshot: %w", err)
	}
	pr.P("finding data that is still in use for %d snapshots", len(roots))

	used := make(usedSet)
	var level []blob.ID
	for _, id := range roots {
		h := blob.Handle{ID: id, Type: blob.TreeBlob}
		if _, ok := used[h]; !ok {
			used[h] = 0
			level = append(level, id)
		}
	}
	// Breadth first, one level at a time: memory is the used set plus one
	// level of tree IDs, never a stack of loaded trees.
	workers := max(runtime.GOMAXPROCS(0), int(r.Backend().Connections()), 4)
	for len(level) > 0 {
		var mu sync.Mutex
		var next []blob.ID
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(workers)
		for _, id := range level {
			g.Go(func() error {
				t, err := r.LoadTree(gctx, id)
				if err != nil {
					return fmt.Errorf("failed finding blobs: tree %s: %w", id.Str(), err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, n := range t.Nodes() {
					switch n.Type {
					case tree.TypeFile:
						for _, d := range n.Content {
							used[blob.Handle{ID: d, Type: blob.DataBlob}] = 0
						}
					case tree.TypeDir:
						if n.Subtree == nil {
							// restic skips it too; check reports it.
							continue
						}
						h := blob.Handle{ID: *n.Subtree, Type: blob.TreeBlob}
						if _, ok := used[h]; !ok {
							used[h] = 0
							next = append(next, *n.Subtree)
						}
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		level = next
	}
	return used, ctx.Err()
}
