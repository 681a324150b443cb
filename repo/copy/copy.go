package copy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/repo/tree"
)

// Options are the optional hooks and tuning of [Snapshots]. The hooks are
// never called concurrently.
type Options struct {
	// Started is called before the trees and data of a snapshot are copied.
	Started func(sn *repo.Snapshot)
	// Planned tells what a snapshot needs copied: the blobs (trees and
	// data) that the destination lacks, their stored size in the source
	// and the number of source packs they are read from.
	Planned func(sn *repo.Snapshot, p Plan)
	// Saved is called when the copy of src was saved in the destination.
	Saved func(src, copied *repo.Snapshot)
	// BatchSize is how much data (stored size in the source) is copied
	// before the snapshots copied so far are saved, provided that
	// BatchTime has passed too. 0 means 100 destination packs, restic's
	// batch.
	BatchSize int64
	// BatchTime is the least time a batch runs; 0 means one minute.
	BatchTime time.Duration
}

// Plan is what one snapshot needs copied.
type Plan struct {
	Blobs int   // trees and data blobs missing in the destination
	Bytes int64 // their stored size in the source
	Packs int   // source packs they are read from
}

// Snapshots copies the snapshots in list from src into dst, in the order
// given, and returns how many it saved. Callers normally pass the result
// of [Missing]; a snapshot that dst holds already is copied again.
//
// Both indexes are loaded if they are not. The snapshots are saved in
// batches, each after the data of its snapshots has been uploaded and
// indexed (restic's order): an interrupted copy leaves no snapshot that
// refers to missing data, and a second run copies only what is missing.
// The caller should hold a (shared) lock on both repositories.
func Snapshots(ctx context.Context, src, dst *repo.Repository, list []*repo.Snapshot, opts Options) (int, error) {
	if err := src.EnsureIndex(ctx, nil); err != nil {
		return 0, fmt.Errorf("copy: load source index: %w", err)
	}
	if err := dst.EnsureIndex(ctx, nil); err != nil {
		return 0, fmt.Errorf("copy: load destination index: %w", err)
	}
	if opts.BatchSize <= 0 {
		ps := dst.Options().PackSize
		if ps == 0 {
			ps = repo.DefaultPackSize
		}
		opts.BatchSize = int64(ps) * 100
	}
	if opts.BatchTime <= 0 {
		opts.BatchTime = time.Minute
	}
	c := &copier{src: src, dst: dst, opts: opts, visited: make(map[blob.ID]struct{})}
	saved := 0
	for len(list) > 0 {
		n, err := c.batch(ctx, list)
		saved += n
		if err != nil {
			return saved, err
		}
		list = list[n:]
	}
	return saved, nil
}

type copier struct {
	src, dst *repo.Repository
	opts     Options
	// visited are the trees walked in this run: a tree shared by several
	// snapshots is walked once, as restic does.
	visited map[blob.ID]struct{}
}

// batch copies the data of snapshots from the front of list until the
// batch is big and old enough, flushes the destination's packs and index,
// and saves the snapshots. It returns how many snapshots it saved.
func (c *copier) batch(ctx context.Context, list []*repo.Snapshot) (int, error) {
	w, err := c.dst.NewBlobWriter(ctx)
	if err != nil {
		return 0, fmt.Errorf("copy: %w", err)
	}
	start := time.Now()
	var size int64
	n := 0
	for n < len(list) && (size < c.opts.BatchSize || time.Since(start) < c.opts.BatchTime) {
		sn := list[n]
		n++
		if c.opts.Started != nil {
			c.opts.Started(sn)
		}
		copied, err := c.copyTree(ctx, w, sn)
		if err != nil {
			// Keep what was uploaded indexed, so that a retry skips it.
			_ = w.Abort(context.WithoutCancel(ctx))
			return 0, fmt.Errorf("copy snapshot %s: %w", sn.ID().Str(), err)
		}
		size += copied
	}
	if err := w.Flush(ctx); err != nil {
		return 0, fmt.Errorf("copy: finish packs and index: %w", err)
	}
	for i, sn := range list[:n] {
		cp := *sn
		cp.Parent = nil
		if cp.Original == nil {
			id := sn.ID()
			cp.Original = &id
		}
		if _, err := c.dst.SaveSnapshot(ctx, &cp); err != nil {
			return i, fmt.Errorf("copy: save copy of snapshot %s: %w", sn.ID().Str(), err)
		}
		if c.opts.Saved != nil {
			c.opts.Saved(sn, &cp)
		}
	}
	return n, nil
}

// copyTree copies what the destination lacks of the snapshot's trees and
// of the data they reference. It returns the stored size it copied.
func (c *copier) copyTree(ctx context.Context, w *repo.BlobWriter, sn *repo.Snapshot) (int64, error) {
	if sn.Tree == nil {
		return 0, errors.New("snapshot has no tree")
	}
	var plan Plan
	if _, seen := c.visited[*sn.Tree]; seen {
		// Another snapshot of this run had the same tree: all copied.
		if c.opts.Planned != nil {
			c.opts.Planned(sn, plan)
		}
		return 0, nil
	}
	c.visited[*sn.Tree] = struct{}{}
	packs := map[blob.ID]struct{}{}
	// need records a blob that the destination lacks and where to read it.
	need := func(h blob.Handle) bool {
		if w.Has(h) {
			return false
		}
		locs := c.src.Index().Lookup(h)
		if len(locs) == 0 {
			return true // loading it reports the missing blob
		}
		plan.Blobs++
		plan.Bytes += int64(locs[0].Length)
		packs[locs[0].Pack] = struct{}{}
		return true
	}
	wantData := map[blob.ID]struct{}{}

	// Trees breadth first, loaded in parallel. The tree bytes are stored
	// as they are, never re-encoded, so the copy has the same IDs whatever
	// the encoder would write today.
	todo := []blob.ID{*sn.Tree}
	for len(todo) > 0 {
		// A bounded number of trees in memory at once, however wide the
		// snapshot; the queue holds only IDs.
		chunk := todo[:min(len(todo), treesAtOnce)]
		todo = todo[len(chunk):]
		trees, raws, err := c.loadTrees(ctx, chunk)
		if err != nil {
			return 0, err
		}
		for i, id := range chunk {
			if need(blob.Handle{ID: id, Type: blob.TreeBlob}) {
				if _, err := w.SaveBlob(ctx, blob.TreeBlob, raws[i], id); err != nil {
					return 0, fmt.Errorf("save tree %s: %w", id.Str(), err)
				}
			}
			// Descend even when the destination has the tree: an
			// interrupted copy may have stored a tree without its data.
			for _, n := range trees[i].Nodes() {
				for _, d := range n.Content {
					if _, ok := wantData[d]; ok {
						continue
					}
					if need(blob.Handle{ID: d, Type: blob.DataBlob}) {
						wantData[d] = struct{}{}
					}
				}
				if n.Subtree != nil {
					if _, seen := c.visited[*n.Subtree]; !seen {
						c.visited[*n.Subtree] = struct{}{}
						todo = append(todo, *n.Subtree)
					}
				}
			}
		}
	}
	plan.Packs = len(packs)
	if c.opts.Planned != nil {
		c.opts.Planned(sn, plan)
	}
	return plan.Bytes, c.copyData(ctx, w, wantData)
}

// treesAtOnce bounds the trees loaded and held at a time.
const treesAtOnce = 256

// loadTrees loads and decodes the trees ids in parallel, keeping the raw
// bytes, which are what gets copied.
func (c *copier) loadTrees(ctx context.Context, ids []blob.ID) ([]*tree.Tree, [][]byte, error) {
	trees := make([]*tree.Tree, len(ids))
	raws := make([][]byte, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(max(1, c.src.Backend().Connections())))
	for i, id := range ids {
		g.Go(func() error {
			buf, err := c.src.LoadBlob(gctx, blob.TreeBlob, id, nil)
			if err != nil {
				return fmt.Errorf("load tree %s: %w", id.Str(), err)
			}
			t, err := tree.Decode(buf)
			if err != nil {
				return fmt.Errorf("decode tree %s: %w", id.Str(), err)
			}
			trees[i], raws[i] = t, buf
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return trees, raws, nil
}

// copyData copies the data blobs, reading each source pack once (in
// ranges) with as many packs at a time as the source serves well.
func (c *copier) copyData(ctx context.Context, w *repo.BlobWriter, want map[blob.ID]struct{}) error {
	byPack := map[blob.ID][]pack.Blob{}
	var lost []blob.ID
	for id := range want {
		locs := c.src.Index().Lookup(blob.Handle{ID: id, Type: blob.DataBlob})
		if len(locs) == 0 {
			lost = append(lost, id)
			continue
		}
		byPack[locs[0].Pack] = append(byPack[locs[0].Pack], locs[0].Blob)
	}
	if len(lost) > 0 {
		slices.SortFunc(lost, blob.ID.Compare)
		return fmt.Errorf("%d data blob(s) not in the source index, first %s: %w", len(lost), lost[0], repo.ErrBlobNotFound)
	}
	ids := make([]blob.ID, 0, len(byPack))
	for id := range byPack {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, blob.ID.Compare)

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(max(1, c.src.Backend().Connections())))
	for _, id := range ids {
		g.Go(func() error { return c.copyPack(gctx, w, id, byPack[id]) })
	}
	return g.Wait()
}
