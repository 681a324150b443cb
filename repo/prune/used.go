package prune

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/tree"
)

// slotSet is a set of index slots (index.Entry), a bit per slot of each blob
// type: a million blobs take 128 KiB where a map of handles took tens of MiB.
// A used blob is recorded by its First slot.
type slotSet [3][]uint64

func newSlotSet(idx *index.Index) slotSet {
	var s slotSet
	for _, t := range []blob.Type{blob.DataBlob, blob.TreeBlob} {
		s[t] = make([]uint64, (idx.Slots(t)+63)/64)
	}
	return s
}

// has reports whether slot is in the set; slots added to the index after
// the set was made never are.
func (s *slotSet) has(t blob.Type, slot int) bool {
	return slot/64 < len(s[t]) && s[t][slot/64]&(1<<(slot%64)) != 0
}

// add adds a slot and reports whether it was new.
func (s *slotSet) add(t blob.Type, slot int) bool {
	w, bit := &s[t][slot/64], uint64(1)<<(slot%64)
	if *w&bit != 0 {
		return false
	}
	*w |= bit
	return true
}

func (s *slotSet) del(t blob.Type, slot int) { s[t][slot/64] &^= 1 << (slot % 64) }

// each calls fn for every slot in the set.
func (s *slotSet) each(fn func(t blob.Type, slot int)) {
	for _, t := range []blob.Type{blob.DataBlob, blob.TreeBlob} {
		for i, w := range s[t] {
			for b := 0; w != 0; b++ {
				if w&1 != 0 {
					fn(t, i*64+b)
				}
				w >>= 1
			}
		}
	}
}

// usedBlobs are the blobs the snapshots reference: those in the index as a
// slot set, the others (which stop the prune) by handle.
type usedBlobs struct {
	slots   slotSet
	missing map[blob.Handle]struct{}
}

// findUsedBlobs loads every snapshot (but the ignored ones) and walks its
// trees, each tree once, recording the trees and the data blobs of files.
// Like restic, a snapshot or tree that cannot be loaded fails the prune:
// deciding with part of the references would delete used data.
func findUsedBlobs(ctx context.Context, r *repo.Repository, ignore map[blob.ID]struct{}, pr Printer) (*usedBlobs, error) {
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

	idx := r.Index()
	used := &usedBlobs{slots: newSlotSet(idx), missing: make(map[blob.Handle]struct{})}
	// add records h and reports whether it was new.
	add := func(h blob.Handle) bool {
		if slot, ok := idx.Find(h); ok {
			return used.slots.add(h.Type, slot)
		}
		if _, ok := used.missing[h]; ok {
			return false
		}
		used.missing[h] = struct{}{}
		return true
	}
	var level []blob.ID
	for _, id := range roots {
		if add(blob.Handle{ID: id, Type: blob.TreeBlob}) {
			level = append(level, id)
		}
	}
	// Breadth first, one level at a time: memory is the used set plus one
	// level of tree IDs, never a stack of loaded trees. A tree missing
	// from the index is still loaded: that fails with its name.
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
							add(blob.Handle{ID: d, Type: blob.DataBlob})
						}
					case tree.TypeDir:
						if n.Subtree == nil {
							// restic skips it too; check reports it.
							continue
						}
						if add(blob.Handle{ID: *n.Subtree, Type: blob.TreeBlob}) {
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
