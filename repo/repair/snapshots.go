package repair

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

// SnapshotsOptions tune Snapshots.
type SnapshotsOptions struct {
	// DryRun only reports: no tree, snapshot or deletion is written.
	DryRun bool
	// Forget removes each original snapshot once its repaired copy is
	// saved. Without it the copy gets the tag "repaired" and the original
	// stays.
	Forget bool
}

// RepairedTag is the tag a repaired snapshot gets when the original is kept.
const RepairedTag = "repaired"

// SnapshotResult is what happened to one snapshot.
type SnapshotResult struct {
	Original *repo.Snapshot
	// Changed is set when the snapshot needed repair (or, with DryRun,
	// would have).
	Changed bool
	// New is the repaired snapshot's ID (zero if none was saved).
	New blob.ID
	// Removed is set when the original snapshot was deleted: with Forget,
	// or because its root tree could not be read at all.
	Removed bool
}

// Snapshots repairs the given snapshots in order, as restic's `repair
// snapshots` does. The index must be loaded and correct (run Index first).
// In each snapshot's trees:
//
//   - a file's content blobs that the index does not know are removed from
//     its content and its size is set to the sum of the blobs kept (a file
//     whose size merely disagrees with its blobs is corrected too);
//   - nodes of type "irregular" or of no type are removed;
//   - a subtree that cannot be loaded or decoded becomes an empty
//     directory; a root tree that cannot be loaded makes the snapshot empty,
//     and it is deleted.
//
// A snapshot whose trees change is saved anew with "original" set to the old
// snapshot's ID and the "repaired" tag (unless Forget, which instead removes
// the old one). The new trees are encoded exactly as restic encodes them, so
// restic's own repair of the same repository yields the same tree IDs.
//
// A failure to load a data blob's pack is not detected here: only the index
// is consulted, as in restic (check --read-data finds such packs, and
// restic's repair packs salvages them).
func Snapshots(ctx context.Context, r *repo.Repository, snaps []*repo.Snapshot, opts SnapshotsOptions, p Printer) ([]SnapshotResult, error) {
	p = orDiscard(p)
	rw := &rewriter{r: r, p: p, dryRun: opts.DryRun, done: make(map[blob.ID]blob.ID)}
	var out []SnapshotResult
	for _, sn := range snaps {
		p.P("\n%v", sn)
		res, err := rw.snapshot(ctx, sn, opts)
		if err != nil {
			return out, fmt.Errorf("unable to rewrite snapshot ID %q: %w", sn.ID().Str(), err)
		}
		out = append(out, res)
	}
	return out, nil
}

// rewriter walks trees and writes repaired copies.
type rewriter struct {
	r      *repo.Repository
	p      Printer
	dryRun bool
	w      *repo.BlobWriter // nil in dry-run mode
	// done maps a tree already rewritten to its new ID, so trees shared by
	// several snapshots are walked once (and report their damage once).
	done map[blob.ID]blob.ID
}

func (rw *rewriter) snapshot(ctx context.Context, sn *repo.Snapshot, opts SnapshotsOptions) (SnapshotResult, error) {
	res := SnapshotResult{Original: sn}
	if !rw.dryRun {
		w, err := rw.r.NewBlobWriter(ctx)
		if err != nil {
			return res, err
		}
		rw.w = w
	}
	newTree, err := rw.tree(ctx, "/", *sn.Tree)
	if rw.w != nil {
		if err != nil {
			_ = rw.w.Abort(context.WithoutCancel(ctx))
			return res, err
		}
		if err := rw.w.Flush(ctx); err != nil {
			return res, err
		}
		rw.w = nil
	}
	if err != nil {
		return res, err
	}

	oldID := sn.ID()
	if newTree.IsNull() {
		res.Changed = true
		if rw.dryRun {
			rw.p.P("would delete empty snapshot")
			return res, nil
		}
		if err := rw.r.RemoveSnapshot(ctx, oldID); err != nil {
			return res, err
		}
		res.Removed = true
		rw.p.P("removed empty snapshot %v", oldID.Str())
		return res, nil
	}
	if newTree == *sn.Tree {
		return res, nil
	}
	res.Changed = true
	if rw.dryRun {
		rw.p.P("would save new snapshot")
		if opts.Forget {
			rw.p.P("would remove old snapshot")
		}
		return res, nil
	}

	repaired := *sn
	repaired.Original = &oldID
	repaired.Tree = &newTree
	if !opts.Forget && !slices.Contains(repaired.Tags, RepairedTag) {
		repaired.Tags = append(slices.Clone(repaired.Tags), RepairedTag)
	}
	id, err := rw.r.SaveSnapshot(ctx, &repaired)
	if err != nil {
		return res, err
	}
	res.New = id
	rw.p.P("saved new snapshot %v", id.Str())
	if opts.Forget {
		if err := rw.r.RemoveSnapshot(ctx, oldID); err != nil {
			return res, err
		}
		res.Removed = true
		rw.p.P("removed old snapshot %v", oldID.Str())
	}
	return res, nil
}

// tree returns the ID of the repaired copy of tree id at dir, the null ID
// when the tree is to be left out (an unreadable root).
func (rw *rewriter) tree(ctx context.Context, dir string, id blob.ID) (blob.ID, error) {
	if newID, ok := rw.done[id]; ok {
		return newID, nil
	}
	var t *tree.Tree
	err := errors.New("tree has no ID")
	if !id.IsNull() {
		t, err = rw.r.LoadTree(ctx, id)
	}
	if err != nil {
		if ctx.Err() != nil {
			return blob.ID{}, ctx.Err()
		}
		if dir == "/" {
			rw.p.P("  dir %q: not readable", dir)
			return blob.ID{}, nil
		}
		rw.p.P("  dir %q: replaced with empty directory", dir)
		// Not remembered in done: restic does not either, and the
		// empty tree costs nothing to encode again.
		return rw.save(ctx, nil)
	}

	var b tree.Builder
	for _, n := range t.Nodes() {
		if err := ctx.Err(); err != nil {
			return blob.ID{}, err
		}
		p := path.Join(dir, n.Name)
		if n = rw.node(n, p); n == nil {
			continue
		}
		if n.Type == tree.TypeDir {
			var sub blob.ID
			if n.Subtree != nil {
				sub = *n.Subtree
			}
			newSub, err := rw.tree(ctx, p, sub)
			if err != nil {
				return blob.ID{}, err
			}
			if newSub.IsNull() {
				continue
			}
			n.Subtree = &newSub
		}
		if err := b.Add(n); err != nil {
			return blob.ID{}, fmt.Errorf("tree %s at %q: %w", id.Str(), dir, err)
		}
	}
	newID, err := rw.save(ctx, b.Finish())
	if err != nil {
		return blob.ID{}, err
	}
	rw.done[id] = newID
	return newID, nil
}

// node returns n repaired, or nil to leave it out.
func (rw *rewriter) node(n *tree.Node, p string) *tree.Node {
	if n.Type == tree.TypeIrregular || n.Type == "" {
		rw.p.P("  file %q: removed node with invalid type %q", p, n.Type)
		return nil
	}
	if n.Type != tree.TypeFile {
		return n
	}
	ok := true
	// Never nil: a file's content is written as [] even when every blob
	// is gone, as restic does.
	content := make([]blob.ID, 0, len(n.Content))
	var size uint64
	idx := rw.r.Index()
	for _, id := range n.Content {
		l, found := idx.PlaintextLength(blob.Handle{ID: id, Type: blob.DataBlob})
		if !found {
			ok = false
			continue
		}
		content = append(content, id)
		size += uint64(l)
	}
	if !ok {
		rw.p.P("  file %q: removed missing content", p)
	} else if size != n.Size {
		rw.p.P("  file %q: fixed incorrect size", p)
	}
	n.Content, n.Size = content, size
	return n
}

// save stores an encoded tree (nil for the empty tree) unless it exists.
func (rw *rewriter) save(ctx context.Context, buf []byte) (blob.ID, error) {
	if buf == nil {
		var b tree.Builder
		buf = b.Finish()
	}
	id := tree.ID(buf)
	if rw.w == nil {
		return id, nil
	}
	if _, err := rw.w.SaveBlob(ctx, blob.TreeBlob, buf, id); err != nil {
		return blob.ID{}, fmt.Errorf("save tree %s: %w", id.Str(), err)
	}
	return id, nil
}
