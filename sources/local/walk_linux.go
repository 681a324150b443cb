package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/internal/exclude"
)

// walker is the state of one Walk. Its methods run on the goroutine that
// called Walk, which is also the only one calling the Visitor.
type walker struct {
	ctx     context.Context
	src     *Source
	v       sources.Visitor
	onError func(string, error) error
	ex      *exclude.Guard
	oneFS   bool
	devs    map[string]uint64 // OneFileSystem: st_dev of each absolute target
	pool    *pool
	topKey  uint32           // walk positions of the top-level directories
	marked  map[string]*mark // marker results for parents of non-explicit leaves
	sc      *scratch
}

// mark is the marker result for a directory holding top-level entries.
type mark struct {
	skipAll, marked bool
	keep            []string
}

// Walk visits every entry below the targets; see sources.Source. Entries
// are visited in restic's snapshot order: each directory before its
// children, children sorted by raw name bytes, LeaveDir after the last
// entry below a directory and LeaveDir("") at the end. Like restic, it
// never applies excludes or OneFileSystem to the targets themselves, and
// skips a directory it cannot open or list (after OnError). The context
// ends the walk early with its error.
//
// The Excluder is called from several goroutines, one call at a time.
// When it also has the methods of sources/filter.Filter, the walk follows
// restic exactly: ExcludedByName before an entry is stat'ed (an excluded
// entry costs nothing and raises no error), ExcludedByMetadata after, and
// ExcludedContents to keep a marked directory with only its marker file.
// A plain sources.Excluder gets Excluded after stat and leaves a directory
// out entirely when ExcludedByContents says so.
func (s *Source) Walk(ctx context.Context, opts sources.WalkOptions, v sources.Visitor) error {
	if s.closed.Load() {
		return errClosed
	}
	targets, err := resolveTargets(s.targets, s.abs)
	if err != nil {
		return err
	}
	root, err := buildTree(targets, s.abs)
	if err != nil {
		return fmt.Errorf("local source: %w", err)
	}
	w := &walker{
		ctx: ctx, src: s, v: v, onError: opts.OnError, ex: exclude.New(opts.Exclude),
		oneFS: opts.OneFileSystem, marked: map[string]*mark{}, sc: newScratch(),
	}
	if w.oneFS {
		w.devs = map[string]uint64{}
		for _, t := range s.targets {
			var st fileStat
			p := s.abs(t)
			if err := lstatAt(unix.AT_FDCWD, p, cstr(p), &st); err != nil {
				return fmt.Errorf("local source: %w", &fs.PathError{Op: "lstat", Path: p, Err: err})
			}
			w.devs[p] = st.dev
		}
	}
	w.pool = newPool(w, s.opts.Workers, s.opts.ReadAhead)
	defer w.pool.stop()

	for _, name := range root.sortedNames() {
		if err := w.node(name, root.children[name]); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return v.LeaveDir(ctx, "")
}

// fail hands a problem with path to OnError: nil means skip and go on.
func (w *walker) fail(path string, err error) error {
	if w.onError == nil {
		return err
	}
	return w.onError(path, err)
}

// visit calls the Visitor unless the walk was cancelled.
func (w *walker) visit(e *sources.Entry) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	return w.v.Visit(w.ctx, e)
}

// node walks one node of the snapshot's top part.
func (w *walker) node(snap string, n *vnode) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if n.leaf() {
		return w.leaf(snap, n)
	}
	e, stop := w.inner(snap, n.info)
	if e == nil {
		return stop
	}
	if err := w.visit(e); err != nil {
		return err
	}
	for _, name := range n.sortedNames() {
		if err := w.node(snap+"/"+name, n.children[name]); err != nil {
			return err
		}
	}
	return w.v.LeaveDir(w.ctx, snap)
}

// inner returns the entry of a directory above the targets. Like restic it
// follows a symlink there, and ignores a permission error listing its
// extended attributes (directories above the targets often belong to
// someone else). Problems go to OnError here: a nil entry means skip it,
// and stop is set when OnError ends the walk.
func (w *walker) inner(snap, host string) (e *sources.Entry, stop error) {
	var s unix.Stat_t
	if err := unix.Stat(host, &s); err != nil {
		return nil, w.fail(host, &fs.PathError{Op: "stat", Path: host, Err: err})
	}
	st := fileStat{
		mode: s.Mode, uid: s.Uid, gid: s.Gid, nlink: uint64(s.Nlink), ino: s.Ino,
		size: s.Size, dev: uint64(s.Dev), rdev: uint64(s.Rdev), atime: s.Atim, mtime: s.Mtim, ctime: s.Ctim,
	}
	e = &sources.Entry{Path: snap, HostPath: host}
	fill(e, &st)
	if e.Type != sources.Dir {
		return nil, w.fail(host, fmt.Errorf("%s is not a directory", host))
	}
	attrs, listErr, attrErr := readXattrs(cstr(host), w.sc)
	if listErr != nil && listErr != unix.EACCES && listErr != unix.EPERM {
		if err := w.fail(host, &fs.PathError{Op: "listxattr", Path: host, Err: listErr}); err != nil {
			return nil, err
		}
	}
	if attrErr != nil {
		if err := w.fail(host, attrErr); err != nil {
			return nil, err
		}
	}
	e.Xattrs = attrs
	e.User, e.Group = w.src.owners.user(e.UID), w.src.owners.group(e.GID)
	return e, nil
}

// leaf walks a target (or an entry of a "." target, or of a target that
// contains another one).
func (w *walker) leaf(snap string, n *vnode) error {
	host := n.host
	if !n.explicit && w.ex.ByName(host) {
		return nil
	}
	e, stop := w.stat(snap, host)
	if e == nil {
		return stop
	}
	mountPoint := false
	if !n.explicit {
		if w.ex.ByMetadata(e) {
			return nil
		}
		if excluded, err := w.markedOut(host); excluded || err != nil {
			return err
		}
		if w.oneFS && e.DeviceID != w.targetDev(host) {
			if e.Type != sources.Dir {
				return nil
			}
			mountPoint = true
		}
	}
	if ok, stop := w.complete(e); !ok {
		return stop
	}
	if e.Type != sources.Dir {
		return w.visit(e)
	}
	dev := e.DeviceID
	if !n.explicit {
		dev = w.targetDev(host)
	}
	j := newDirJob([]uint32{w.topKey}, -1, "", host, snap, e, dev)
	w.topKey++
	j.mountPoint = mountPoint
	return w.dir(e, j)
}

// stat lstat()s a top-level entry by path and fills in its metadata and
// symlink target; complete does the rest once excludes have been applied.
// Problems go to OnError here, as in inner.
func (w *walker) stat(snap, host string) (e *sources.Entry, stop error) {
	var st fileStat
	cpath := cstr(host)
	if err := lstatAt(unix.AT_FDCWD, host, cpath, &st); err != nil {
		return nil, w.fail(host, statError(host, err))
	}
	e = &sources.Entry{Path: snap, HostPath: host}
	fill(e, &st)
	if e.Type == sources.Symlink {
		buf := make([]byte, 256)
		target, err := readlinkAt(unix.AT_FDCWD, cpath, &buf)
		if err != nil {
			if vanished(err) {
				return nil, w.fail(host, vanishedError("readlink", host, err))
			}
			if err := w.fail(host, &fs.PathError{Op: "readlink", Path: host, Err: err}); err != nil {
				return nil, err
			}
		}
		e.LinkTarget = target
	}
	return e, nil
}

// complete adds what stat leaves out, for an entry that stays: extended
// attributes, owner names and Open. It returns false when the entry
// vanished meanwhile (reported).
func (w *walker) complete(e *sources.Entry) (ok bool, stop error) {
	host := e.HostPath
	attrs, listErr, attrErr := readXattrs(cstr(host), w.sc)
	if listErr != nil {
		if vanished(listErr) {
			return false, w.fail(host, vanishedError("listxattr", host, listErr))
		}
		if err := w.fail(host, &fs.PathError{Op: "listxattr", Path: host, Err: listErr}); err != nil {
			return false, err
		}
	}
	if attrErr != nil {
		if err := w.fail(host, attrErr); err != nil {
			return false, err
		}
	}
	e.Xattrs = attrs
	e.User, e.Group = w.src.owners.user(e.UID), w.src.owners.group(e.GID)
	if e.Type == sources.File {
		e.Open = w.src.opener(host, e.Inode, e.DeviceID, e.UID)
	}
	return true, nil
}

// markedOut applies the marker rules of a top-level entry's parent
// directory, which the walk does not otherwise read.
func (w *walker) markedOut(host string) (bool, error) {
	if !w.ex.HasMarkers() {
		return false, nil
	}
	parent := filepath.Dir(host)
	m, ok := w.marked[parent]
	if !ok {
		dir, stop := w.inner("", parent)
		if dir == nil {
			// restic warns and does not exclude when it cannot check.
			return false, stop
		}
		m = &mark{}
		m.skipAll, m.marked, m.keep = w.ex.Contents(dir, func(name string, n int) ([]byte, error) {
			return peekPath(parent+"/"+name, n)
		})
		w.marked[parent] = m
	}
	return m.skipAll || (m.marked && !slices.Contains(m.keep, filepath.Base(host))), nil
}

// peekPath is dirJob.peek for a directory the walk does not hold open.
func peekPath(p string, n int) ([]byte, error) {
	if n <= 0 {
		if _, err := os.Lstat(p); err != nil {
			return nil, err
		}
		return nil, nil
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer closeFD(fd)
	return readUpTo(fd, n, p)
}

// targetDev returns the device of the target closest above host, the file
// system OneFileSystem keeps host's walk on.
func (w *walker) targetDev(host string) uint64 {
	for p := host; ; p = filepath.Dir(p) {
		if dev, ok := w.devs[p]; ok {
			return dev
		}
		if p == "/" || p == "." {
			return 0
		}
	}
}

// dir waits for a directory to be read, visits it, walks its contents and
// leaves it. A directory that cannot be opened or listed is reported and
// skipped, with nothing of it in the snapshot, as in restic.
func (w *walker) dir(e *sources.Entry, j *dirJob) error {
	w.pool.take(j)
	select {
	case <-j.done:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	if j.err != nil {
		if errors.Is(j.err, unix.ENOENT) {
			j.err = fmt.Errorf("%w: %w", sources.ErrVanished, j.err)
		}
		return w.fail(j.host, j.err)
	}
	defer func() {
		if j.fd >= 0 {
			w.pool.fds.release(j.fd)
		}
	}()
	if j.skipAll {
		return nil
	}
	if err := w.visit(e); err != nil {
		return err
	}
	for i, c := range j.chunks {
		w.pool.queueNext(j)
		select {
		case <-c.done:
		case <-w.ctx.Done():
			return w.ctx.Err()
		}
		err := w.chunk(c)
		c.release()
		if err != nil {
			return err
		}
		j.chunks[i] = nil // let the collector have the rest
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	return w.v.LeaveDir(w.ctx, e.Path)
}

// chunk visits a chunk's entries, reporting its problems in order.
func (w *walker) chunk(c *chunkJob) error {
	errs := c.errs
	report := func(pos int) error {
		for len(errs) > 0 && errs[0].pos == pos {
			if err := w.fail(errs[0].path, errs[0].err); err != nil {
				return err
			}
			errs = errs[1:]
		}
		return nil
	}
	for i := range c.entries {
		if err := report(i); err != nil {
			return err
		}
		e := &c.entries[i]
		var err error
		if sub := c.subdirs[i]; sub != nil {
			err = w.dir(e, sub)
		} else {
			err = w.visit(e)
		}
		if err != nil {
			return err
		}
	}
	return report(len(c.entries))
}
