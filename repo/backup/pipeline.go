package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
	"github.com/cairn-backup/cairn/sources"
)

// backuper holds the state of one run.
type backuper struct {
	r          *repo.Repository
	saver      blobSaver
	info       sources.Info
	opts       Options
	parentTree *blob.ID

	g    *errgroup.Group
	gctx context.Context

	files chan *fileJob
	blobs chan *chunkJob

	// frames are the directories that are still open, by snapshot path.
	// Only the walking goroutine touches the map.
	frames map[string]*dirFrame
	root   *dirFrame
	rootID blob.ID

	chunkBufs     sync.Pool
	streamChunker *chunk.Chunker // for streamed sources, used by the walker
	prefetchSem   chan struct{}  // bounds the parent-snapshot trees loading ahead
	// streamFiles are the regular files of a streamed walk, by path, for
	// hard links to them (VisitLink); linkGroups counts the groups.
	streamFiles map[string]*streamFile
	linkGroups  uint64

	warnings                                atomic.Int64
	filesNew, filesChanged, filesUnmodified atomic.Int64
	dirsNew, dirsChanged, dirsUnmodified    atomic.Int64
	bytesProcessed                          atomic.Int64
}

func newBackuper(r *repo.Repository, saver blobSaver, info sources.Info, opts Options, parentTree *blob.ID) *backuper {
	defaultWorkers(&opts, info)
	return &backuper{r: r, saver: saver, info: info, opts: opts, parentTree: parentTree, frames: make(map[string]*dirFrame), prefetchSem: make(chan struct{}, prefetchLoads)}
}

// slot is one entry of a directory; its node is filled when the entry is
// done (nil if the entry was skipped).
type slot struct {
	node *tree.Node
	prev *tree.Node
}

// dirFrame is a directory being assembled. pending counts children that are
// not done yet plus one while the directory is still open; the goroutine
// that brings it to zero writes the tree.
type dirFrame struct {
	path     string
	node     *tree.Node  // nil for the root
	prevTree *tree.Tree  // the same directory in the parent snapshot
	prefetch *prefetcher // prevTree's subdirectory trees, loading ahead
	up       *dirFrame
	slot     *slot // this directory's slot in up
	slots    []*slot
	pending  atomic.Int64
	depth    int
}

func (b *backuper) warn(path string, err error) {
	b.warnings.Add(1)
	if b.opts.Progress != nil {
		b.opts.Progress.Errors.Add(1)
	}
	if b.opts.Warn != nil {
		b.opts.Warn(path, err)
	}
}

// run walks the source and returns the root tree ID once every tree is
// written.
func (b *backuper) run(ctx context.Context, src sources.Source) (blob.ID, error) {
	b.g, b.gctx = errgroup.WithContext(ctx)
	b.files = make(chan *fileJob, b.opts.FileReaders*4)
	b.blobs = make(chan *chunkJob, b.opts.BlobWorkers*2)

	var parentRoot *tree.Tree
	if b.parentTree != nil {
		t, err := b.r.LoadTree(ctx, *b.parentTree)
		if err != nil {
			b.warn("/", fmt.Errorf("load parent snapshot's root tree (reading every file instead): %w", err))
		} else {
			parentRoot = t
		}
	}
	b.root = &dirFrame{path: "", prevTree: parentRoot}
	b.root.pending.Store(1)
	b.frames[""] = b.root
	b.startPrefetch(b.gctx, b.root)

	var readers, blobbers sync.WaitGroup
	for i := 0; i < b.opts.FileReaders; i++ {
		readers.Add(1)
		b.g.Go(func() error {
			defer readers.Done()
			return b.fileWorker(b.gctx)
		})
	}
	for i := 0; i < b.opts.BlobWorkers; i++ {
		blobbers.Add(1)
		b.g.Go(func() error {
			defer blobbers.Done()
			return b.blobWorker(b.gctx)
		})
	}
	b.g.Go(func() error {
		// Close the queues in order once the walk ended: file readers
		// feed the blob workers.
		defer func() {
			readers.Wait()
			close(b.blobs)
		}()
		defer close(b.files)
		opts := sources.WalkOptions{
			Exclude:       b.opts.Exclude,
			OneFileSystem: b.opts.OneFileSystem,
			OnError: func(path string, err error) error {
				b.warn(path, err)
				return nil
			},
		}
		if err := src.Walk(b.gctx, opts, (*visitor)(b)); err != nil {
			return err
		}
		// Streamed sources leave only the root; close whatever is still
		// open, deepest first, so that every tree gets written.
		return b.closeAll(b.gctx)
	})
	if err := b.g.Wait(); err != nil {
		return blob.ID{}, err
	}
	if b.rootID.IsNull() {
		return blob.ID{}, errors.New("backup finished without a root tree (internal error)")
	}
	return b.rootID, nil
}

// visitor adapts the backuper to sources.Visitor.
type visitor backuper

func (v *visitor) Visit(ctx context.Context, e *sources.Entry) error {
	return (*backuper)(v).visit(ctx, e)
}

func (v *visitor) LeaveDir(ctx context.Context, path string) error {
	b := (*backuper)(v)
	if path == "" {
		return b.closeAll(ctx)
	}
	f := b.frames[path]
	if f == nil {
		return nil
	}
	delete(b.frames, path)
	return b.childDone(ctx, f)
}

func splitPath(p string) (dir, base string) {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}

// frameFor returns the open directory at path, creating missing ones (a
// tar stream may name a file before, or without, its directory).
func (b *backuper) frameFor(ctx context.Context, path string) *dirFrame {
	if f := b.frames[path]; f != nil {
		return f
	}
	dir, base := splitPath(path)
	up := b.frameFor(ctx, dir)
	n := &tree.Node{Name: base, Type: tree.TypeDir, Mode: fs.ModeDir | 0o755}
	return b.openDir(ctx, up, path, n)
}

func (b *backuper) openDir(ctx context.Context, up *dirFrame, path string, n *tree.Node) *dirFrame {
	s := &slot{}
	if up.prevTree != nil {
		s.prev = up.prevTree.Find(n.Name)
	}
	f := &dirFrame{path: path, node: n, up: up, slot: s, depth: up.depth + 1}
	f.pending.Store(1)
	if s.prev != nil && s.prev.Type == tree.TypeDir && s.prev.Subtree != nil {
		t, ok, err := b.prefetched(ctx, up, n.Name)
		if !ok || (err != nil && ctx.Err() == nil) {
			// Not loaded ahead, or failed there: load (again) here.
			t, err = b.r.LoadTree(ctx, *s.prev.Subtree)
		}
		if err != nil {
			b.warn(path, fmt.Errorf("load tree from parent snapshot (reading the directory's files again): %w", err))
		} else {
			f.prevTree = t
			b.startPrefetch(ctx, f)
		}
	}
	up.addSlot(s)
	b.frames[path] = f
	return f
}

func (f *dirFrame) addSlot(s *slot) {
	f.slots = append(f.slots, s)
	f.pending.Add(1)
}

func (b *backuper) visit(ctx context.Context, e *sources.Entry) error {
	if e.Path == "" || strings.HasPrefix(e.Path, "/") {
		return fmt.Errorf("source reported an invalid path %q", e.Path)
	}
	dir, _ := splitPath(e.Path)
	up := b.frameFor(ctx, dir)
	switch e.Type {
	case sources.Socket:
		return nil // restic does not store sockets
	case sources.Dir:
		n := newNode(e, &b.opts)
		if f := b.frames[e.Path]; f != nil {
			// Synthesised earlier for a stream that named a child first.
			f.node = n
			return nil
		}
		b.openDir(ctx, up, e.Path, n)
		if b.opts.Progress != nil {
			b.opts.Progress.Dirs.Add(1)
		}
		return nil
	case sources.File:
		return b.visitFile(ctx, up, e)
	}
	s := &slot{node: newNode(e, &b.opts)}
	if up.prevTree != nil {
		s.prev = up.prevTree.Find(s.node.Name)
	}
	up.slots = append(up.slots, s)
	return nil
}

func (b *backuper) visitFile(ctx context.Context, up *dirFrame, e *sources.Entry) error {
	n := newNode(e, &b.opts)
	s := &slot{}
	if up.prevTree != nil {
		s.prev = up.prevTree.Find(n.Name)
	}
	if !b.opts.Force && unchanged(e, s.prev, b.info.Has, &b.opts) {
		if b.allBlobsKnown(s.prev.Content) {
			n.Content = s.prev.Content
			n.Size = s.prev.Size
			s.node = n
			up.slots = append(up.slots, s)
			b.rememberFile(e.Path, n, nil)
			b.filesUnmodified.Add(1)
			b.bytesProcessed.Add(int64(n.Size))
			if b.opts.Progress != nil {
				b.opts.Progress.Files.Add(1)
				b.opts.Progress.Bytes.Add(int64(n.Size))
			}
			return nil
		}
		b.warn(e.HostPath, errors.New("parts of the file are not in the repository index; storing it again"))
	}
	if e.Open == nil {
		return fmt.Errorf("source gave no content for file %q", e.HostPath)
	}
	up.addSlot(s)
	job := &fileJob{frame: up, slot: s, node: n, open: e.Open, hostPath: e.HostPath, size: e.Size}
	b.rememberFile(e.Path, n, job)
	if b.info.Streamed {
		// The content is only readable now: read it in this goroutine,
		// hashing and compressing in the blob workers.
		if b.streamChunker == nil {
			b.streamChunker = chunk.New(b.r.Config().Polynomial)
		}
		return b.readFile(ctx, b.streamChunker, job)
	}
	select {
	case b.files <- job:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (b *backuper) allBlobsKnown(ids []blob.ID) bool {
	idx := b.r.Index()
	for _, id := range ids {
		if !idx.Has(blob.Handle{ID: id, Type: blob.DataBlob}) {
			return false
		}
	}
	return true
}

// closeAll closes every open directory, deepest first, then the root.
func (b *backuper) closeAll(ctx context.Context) error {
	if len(b.frames) == 0 {
		return nil
	}
	open := make([]*dirFrame, 0, len(b.frames))
	for _, f := range b.frames {
		open = append(open, f)
	}
	slices.SortFunc(open, func(a, c *dirFrame) int { return c.depth - a.depth })
	clear(b.frames)
	for _, f := range open {
		if err := b.childDone(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// childDone drops one pending count of f; the last one writes f's tree and
// reports f as done to its parent.
func (b *backuper) childDone(ctx context.Context, f *dirFrame) error {
	for f != nil {
		if f.pending.Add(-1) != 0 {
			return nil
		}
		id, err := b.saveTree(ctx, f)
		if err != nil {
			return err
		}
		if f.up == nil {
			b.rootID = id
			return nil
		}
		n := f.node
		n.Subtree = &id
		n.Content = nil
		f.slot.node = n
		switch prev := f.slot.prev; {
		case prev == nil:
			b.dirsNew.Add(1)
		case prev.Equal(n):
			b.dirsUnmodified.Add(1)
		default:
			b.dirsChanged.Add(1)
		}
		f = f.up
	}
	return nil
}

// saveTree encodes the directory's nodes, sorted by name (a stream may list
// them in any order; for a repeated name the last one wins), and stores the
// tree blob unless it is known.
func (b *backuper) saveTree(ctx context.Context, f *dirFrame) (blob.ID, error) {
	nodes := make([]*tree.Node, 0, len(f.slots))
	for _, s := range f.slots {
		if s.node != nil {
			nodes = append(nodes, s.node)
		}
	}
	slices.SortStableFunc(nodes, func(a, c *tree.Node) int { return strings.Compare(a.Name, c.Name) })
	nodes = slices.CompactFunc(reverse(nodes), func(a, c *tree.Node) bool { return a.Name == c.Name })
	slices.Reverse(nodes)
	buf, err := tree.Encode(nodes)
	if err != nil {
		return blob.ID{}, fmt.Errorf("encode tree for %q: %w", "/"+f.path, err)
	}
	id := tree.ID(buf)
	if _, err := b.saver.SaveBlob(ctx, blob.TreeBlob, buf, id); err != nil {
		return blob.ID{}, fmt.Errorf("save tree for %q: %w", "/"+f.path, err)
	}
	return id, nil
}

// reverse reverses in place so that CompactFunc keeps the last of equal
// names.
func reverse(nodes []*tree.Node) []*tree.Node {
	slices.Reverse(nodes)
	return nodes
}
