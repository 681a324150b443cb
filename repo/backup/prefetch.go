package backup

import (
	"context"

	"github.com/cairn-backup/cairn/repo/tree"
)

const (
	// prefetchAhead is how many subdirectory trees of one directory of the
	// parent snapshot are loaded ahead of the walk. Loading a tree (read,
	// decrypt, decompress, decode) takes longer than walking most
	// directories, and the walk is serial: without this, an unchanged
	// re-backup of 200k files spends most of its walk waiting for trees.
	prefetchAhead = 8
	// prefetchLoads bounds the trees being loaded at once.
	prefetchLoads = 4
)

// treeFuture is a parent-snapshot tree being loaded.
type treeFuture struct {
	done chan struct{}
	t    *tree.Tree
	err  error
}

// prefetcher loads the subdirectory trees of one directory of the parent
// snapshot in name order, at most prefetchAhead beyond those the walk has
// taken. Only the walking goroutine uses it; the loads report through
// their futures.
type prefetcher struct {
	subdirs []*tree.Node // with a subtree, in the tree's (name) order
	next    int
	pending map[string]*treeFuture
}

// startPrefetch begins loading the subdirectory trees of f's parent tree.
func (b *backuper) startPrefetch(ctx context.Context, f *dirFrame) {
	if f.prevTree == nil {
		return
	}
	var subdirs []*tree.Node
	for _, n := range f.prevTree.Nodes() {
		if n.Type == tree.TypeDir && n.Subtree != nil {
			subdirs = append(subdirs, n)
		}
	}
	if len(subdirs) == 0 {
		return
	}
	f.prefetch = &prefetcher{subdirs: subdirs, pending: map[string]*treeFuture{}}
	b.fillPrefetch(ctx, f.prefetch)
}

func (b *backuper) fillPrefetch(ctx context.Context, p *prefetcher) {
	for len(p.pending) < prefetchAhead && p.next < len(p.subdirs) {
		n := p.subdirs[p.next]
		p.next++
		fut := &treeFuture{done: make(chan struct{})}
		p.pending[n.Name] = fut
		id := *n.Subtree
		b.g.Go(func() error {
			defer close(fut.done)
			select {
			case b.prefetchSem <- struct{}{}:
			case <-ctx.Done():
				fut.err = context.Cause(ctx)
				return nil
			}
			fut.t, fut.err = b.r.LoadTree(ctx, id)
			<-b.prefetchSem
			// A failed load is the consumer's warning, not an error of
			// the backup.
			return nil
		})
	}
}

// prefetched returns the tree loaded ahead for the subdirectory name of
// up, if one was started, and starts the next.
func (b *backuper) prefetched(ctx context.Context, up *dirFrame, name string) (*tree.Tree, bool, error) {
	p := up.prefetch
	if p == nil {
		return nil, false, nil
	}
	fut := p.pending[name]
	if fut == nil {
		return nil, false, nil
	}
	delete(p.pending, name)
	// The walk goes in name order, like the tree: directories before this
	// one that were not visited are gone; free their places.
	for other := range p.pending {
		if other < name {
			delete(p.pending, other)
		}
	}
	select {
	case <-fut.done:
	case <-ctx.Done():
		return nil, true, context.Cause(ctx)
	}
	b.fillPrefetch(ctx, p)
	return fut.t, true, fut.err
}
