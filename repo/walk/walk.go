package walk

import (
	"context"
	"errors"
	"fmt"
	"path"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

// TreeLoader loads and decodes a tree blob; *repo.Repository is one.
type TreeLoader interface {
	LoadTree(ctx context.Context, id blob.ID) (*tree.Tree, error)
}

// SkipNode returned by a Visitor for a directory node skips that
// directory's contents; returned for any other node it skips the remaining
// entries of the directory being listed. It is never returned by Walk.
var SkipNode = errors.New("skip this node")

// Visitor is called for every node. parent is the ID of the tree that
// holds the node and p its slash-separated path from the root ("/a/b").
//
// The first call is for the root itself: n is nil, p is "/", parent is the
// root's ID and loadErr says whether the root tree could be loaded. For a
// directory, loadErr is the error loading its subtree (the subtree is then
// not walked, whatever the visitor returns). A visitor that returns an
// error other than SkipNode ends the walk with that error.
type Visitor func(parent blob.ID, p string, n *tree.Node, loadErr error) error

// Walk visits the tree root and everything below it.
func Walk(ctx context.Context, l TreeLoader, root blob.ID, visit Visitor) error {
	t, err := l.LoadTree(ctx, root)
	if err := visit(root, "/", nil, err); err != nil {
		if errors.Is(err, SkipNode) {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	return walk(ctx, l, "/", root, t, visit)
}

func walk(ctx context.Context, l TreeLoader, prefix string, id blob.ID, t *tree.Tree, visit Visitor) error {
	for _, n := range t.Nodes() {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := path.Join(prefix, n.Name)
		if n.Type == "" {
			return fmt.Errorf("node type is empty for node %q", n.Name)
		}
		if n.Type != tree.TypeDir {
			if err := visit(id, p, n, nil); err != nil {
				if errors.Is(err, SkipNode) {
					break
				}
				return err
			}
			continue
		}
		if n.Subtree == nil {
			return fmt.Errorf("subtree for node %v in tree %v is nil", n.Name, p)
		}
		sub, loadErr := l.LoadTree(ctx, *n.Subtree)
		if err := visit(id, p, n, loadErr); err != nil {
			if errors.Is(err, SkipNode) {
				continue
			}
			return err
		}
		if loadErr != nil {
			// The visitor accepted the failure; there is nothing to walk.
			continue
		}
		if err := walk(ctx, l, p, *n.Subtree, sub, visit); err != nil {
			return err
		}
	}
	return nil
}

// treeWorkers is how many trees UsedBlobs loads at once: enough to hide
// the latency of a remote backend, few enough not to flood it.
const treeWorkers = 8

// UsedBlobs adds to set every blob the trees roots reference: the trees
// themselves, their subtrees and the data blobs of their files. A tree
// already in set is not loaded again, so calling it once per snapshot with
// the same set loads each shared tree once. The trees of one level are
// loaded concurrently; l must allow that.
func UsedBlobs(ctx context.Context, l TreeLoader, roots []blob.ID, set map[blob.Handle]struct{}) error {
	level := roots
	for len(level) > 0 {
		// The trees of this level not seen before, each once.
		var todo []blob.ID
		for _, id := range level {
			h := blob.Handle{ID: id, Type: blob.TreeBlob}
			if _, seen := set[h]; !seen {
				set[h] = struct{}{}
				todo = append(todo, id)
			}
		}
		trees := make([]*tree.Tree, len(todo))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(treeWorkers)
		for i, id := range todo {
			g.Go(func() error {
				t, err := l.LoadTree(gctx, id)
				if err != nil {
					return fmt.Errorf("load tree %s: %w", id.Str(), err)
				}
				trees[i] = t
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		level = nil
		for i, t := range trees {
			for _, n := range t.Nodes() {
				switch n.Type {
				case tree.TypeFile:
					for _, c := range n.Content {
						set[blob.Handle{ID: c, Type: blob.DataBlob}] = struct{}{}
					}
				case tree.TypeDir:
					if n.Subtree == nil {
						return fmt.Errorf("tree %s: directory %q has no subtree", todo[i].Str(), n.Name)
					}
					level = append(level, *n.Subtree)
				}
			}
		}
	}
	return ctx.Err()
}
