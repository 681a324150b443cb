package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/internal/exclude"
)

const (
	// listers bounds the directory listings in flight at once; each is a
	// chain of round trips, so several overlap their latency.
	listers = 8
	// readAheadDirs is how many subdirectories of a directory are listed
	// before the walk reaches them (their listings wait in memory).
	readAheadDirs = 8
	// linkLookups bounds the READLINK requests of one listing in flight.
	linkLookups = 16
)

// walker is the state of one Walk. Its methods run on the goroutine that
// called Walk, the only one calling the Visitor; listings run on others.
type walker struct {
	ctx     context.Context
	src     *Source
	v       sources.Visitor
	onError func(string, error) error
	ex      *exclude.Guard
	sem     chan struct{}
	wg      sync.WaitGroup
}

// dirJob is one directory to list, and then the listing.
type dirJob struct {
	host, snap string
	entry      *sources.Entry // the directory itself, for marker rules
	started    bool
	done       chan struct{}

	err     error // listing failed: the directory is reported and left out
	skipAll bool  // a plain Excluder left it out by its contents
	items   []item
	subs    []*dirJob // the directories among items, in order
	nextSub int       // how many of subs have been started
}

// item is one child of a listed directory: problems to report before it,
// and the entry unless drop is set.
type item struct {
	fails []failure
	e     sources.Entry
	drop  bool
	sub   *dirJob
}

type failure struct {
	path string
	err  error
}

// Walk visits every entry below the targets; see sources.Source. Entries
// come in restic's snapshot order (each directory before its children,
// children sorted by raw name bytes, LeaveDir after the last entry below a
// directory, LeaveDir("") last). Directories are listed by a few
// goroutines ahead of the visitor over the source's one connection.
// Excludes never apply to the targets themselves. A directory that cannot
// be listed is reported to OnError and left out, as in restic. Device
// nodes are left out without a report: SFTP does not carry their device
// numbers, and a node restored as the wrong device is worse than none.
// OneFileSystem has no effect (SFTP reports no device IDs).
func (s *Source) Walk(ctx context.Context, opts sources.WalkOptions, v sources.Visitor) error {
	if s.closed.Load() {
		return errClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &walker{
		ctx: ctx, src: s, v: v, onError: opts.OnError,
		ex: exclude.New(opts.Exclude), sem: make(chan struct{}, listers),
	}
	defer func() {
		cancel()
		w.wg.Wait()
	}()
	root, all := layout(s.info.Paths)
	if all {
		e, err := w.inner("", "/")
		if e == nil {
			return err
		}
		if err := w.dir(&dirJob{host: "/", snap: "", entry: e}, nil); err != nil {
			return err
		}
	} else {
		for _, name := range root.sortedNames() {
			if err := w.node(name, root.children[name]); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return v.LeaveDir(ctx, "")
}

// fail hands a problem with path to OnError: nil means skip and go on.
// A lost connection is no problem of one entry: it ends the walk.
func (w *walker) fail(path string, err error) error {
	if w.onError == nil || errors.Is(err, ErrConnectionLost) {
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
		return w.target(snap, n.host)
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

// inner returns the entry of a directory above the targets, following a
// symlink there like restic. A nil entry means skip it; stop is set when
// OnError ends the walk.
func (w *walker) inner(snap, host string) (e *sources.Entry, stop error) {
	fi, err := w.src.client.Stat(host)
	if err != nil {
		return nil, w.fail(host, &fs.PathError{Op: "stat", Path: host, Err: w.src.lost(err)})
	}
	e = &sources.Entry{Path: snap, HostPath: host}
	w.fill(e, fi)
	if e.Type != sources.Dir {
		return nil, w.fail(host, fmt.Errorf("%s is not a directory", host))
	}
	return e, nil
}

// target walks one of the source's paths; excludes do not apply to it.
func (w *walker) target(snap, host string) error {
	fi, err := w.src.client.Lstat(host)
	if err != nil {
		err = w.src.lost(err)
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: %w", sources.ErrVanished, err)
		}
		return w.fail(host, &fs.PathError{Op: "lstat", Path: host, Err: err})
	}
	e := &sources.Entry{Path: snap, HostPath: host}
	if !w.fill(e, fi) {
		return nil
	}
	if e.Type == sources.Symlink {
		if e.LinkTarget, err = w.src.client.ReadLink(host); err != nil {
			if err := w.fail(host, &fs.PathError{Op: "readlink", Path: host, Err: w.src.lost(err)}); err != nil {
				return err
			}
		}
	}
	if e.Type != sources.Dir {
		return w.visit(e)
	}
	return w.dir(&dirJob{host: host, snap: snap, entry: e}, e)
}

// fill sets e's metadata from an SFTP attribute set. It returns false for
// entries the walk leaves out (device nodes).
func (w *walker) fill(e *sources.Entry, fi os.FileInfo) bool {
	st, _ := fi.Sys().(*sftp.FileStat)
	if st == nil {
		st = &sftp.FileStat{}
	}
	e.Type, e.Mode = fromMode(st.Mode)
	if e.Type == sources.File {
		e.Size = int64(st.Size)
		e.Open = w.src.opener(e.HostPath, e.Size)
	}
	// SFTP version 3 carries unsigned 32-bit seconds (sftp-server casts
	// time_t): times before 1970 or after 2106 arrive wrapped.
	e.ModTime = time.Unix(int64(st.Mtime), 0)
	e.AccessTime = time.Unix(int64(st.Atime), 0)
	e.UID, e.GID = st.UID, st.GID
	if w.src.owners != nil {
		e.User, e.Group = w.src.owners.names(e.UID, e.GID)
	}
	return e.Type != sources.Dev && e.Type != sources.CharDev
}

// POSIX st_mode bits as SFTP carries them.
const (
	sIFMT   = 0o170000
	sIFSOCK = 0o140000
	sIFLNK  = 0o120000
	sIFREG  = 0o100000
	sIFBLK  = 0o060000
	sIFDIR  = 0o040000
	sIFCHR  = 0o020000
	sIFIFO  = 0o010000
)

// fromMode converts an st_mode to the entry type and Go file mode.
func fromMode(m uint32) (sources.Type, fs.FileMode) {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	switch m & sIFMT {
	case sIFREG:
		return sources.File, mode
	case sIFDIR:
		return sources.Dir, mode | fs.ModeDir
	case sIFLNK:
		return sources.Symlink, mode | fs.ModeSymlink
	case sIFCHR:
		return sources.CharDev, mode | fs.ModeDevice | fs.ModeCharDevice
	case sIFBLK:
		return sources.Dev, mode | fs.ModeDevice
	case sIFIFO:
		return sources.FIFO, mode | fs.ModeNamedPipe
	case sIFSOCK:
		return sources.Socket, mode | fs.ModeSocket
	}
	return sources.Irregular, mode | fs.ModeIrregular
}

// dir waits for a directory's listing, visits the directory (unless e is
// nil: the remote root as a target), walks its children and leaves it.
func (w *walker) dir(j *dirJob, e *sources.Entry) error {
	w.start(j)
	select {
	case <-j.done:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	if j.err != nil {
		return w.fail(j.host, j.err)
	}
	if j.skipAll {
		return nil
	}
	if e != nil {
		if err := w.visit(e); err != nil {
			return err
		}
	}
	w.prefetch(j, readAheadDirs)
	for i := range j.items {
		it := &j.items[i]
		for _, f := range it.fails {
			if err := w.fail(f.path, f.err); err != nil {
				return err
			}
		}
		if it.drop {
			continue
		}
		var err error
		if it.sub != nil {
			w.prefetch(j, 1)
			err = w.dir(it.sub, &it.e)
			it.sub = nil // let the listing go
		} else {
			err = w.visit(&it.e)
		}
		if err != nil {
			return err
		}
		j.items[i] = item{}
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if e == nil {
		return nil
	}
	return w.v.LeaveDir(w.ctx, e.Path)
}

// prefetch starts listing up to n more subdirectories of j.
func (w *walker) prefetch(j *dirJob, n int) {
	for ; n > 0 && j.nextSub < len(j.subs); n-- {
		w.start(j.subs[j.nextSub])
		j.nextSub++
	}
}

// start lists j on another goroutine, once.
func (w *walker) start(j *dirJob) {
	if j.started {
		return
	}
	j.started = true
	j.done = make(chan struct{})
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer close(j.done)
		select {
		case w.sem <- struct{}{}:
		case <-w.ctx.Done():
			j.err = w.ctx.Err()
			return
		}
		defer func() { <-w.sem }()
		w.list(j)
	}()
}

// list reads a directory: names and attributes in one READDIR stream,
// symlink targets, marker rules and excludes.
func (w *walker) list(j *dirJob) {
	c := w.src.client
	infos, err := c.ReadDirContext(w.ctx, j.host)
	if err != nil {
		err = w.src.lost(err)
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: %w", sources.ErrVanished, err)
		}
		j.err = &fs.PathError{Op: "readdir", Path: j.host, Err: err}
		return
	}
	var pre []failure
	if len(infos) == 0 {
		// OpenSSH's sftp-server drops every name it cannot lstat, so a
		// directory that may be read but not searched lists as empty.
		// Only then is the extra round trip worth it.
		if _, err := c.Lstat(join(j.host, ".")); errors.Is(err, fs.ErrPermission) {
			pre = append(pre, failure{j.host, fmt.Errorf("list %s: the directory is not searchable, "+
				"so the SFTP server hides its entries: %w", j.host, err)})
		}
	}
	slices.SortFunc(infos, func(a, b os.FileInfo) int {
		switch {
		case a.Name() < b.Name():
			return -1
		case a.Name() > b.Name():
			return 1
		}
		return 0
	})
	names := make(map[string]bool, len(infos))
	for _, fi := range infos {
		names[fi.Name()] = true
	}
	var marked bool
	var keep []string
	j.skipAll, marked, keep = w.ex.Contents(j.entry, func(name string, n int) ([]byte, error) {
		return w.peek(j.host, name, n, names)
	})
	if j.skipAll {
		return
	}

	j.items = make([]item, 0, len(infos)+1)
	if len(pre) > 0 {
		j.items = append(j.items, item{fails: pre, drop: true})
	}
	var links []int
	for _, fi := range infos {
		name := fi.Name()
		if marked && !slices.Contains(keep, name) {
			continue
		}
		host := join(j.host, name)
		if w.ex.ByName(host) {
			continue
		}
		it := item{e: sources.Entry{Path: joinSnap(j.snap, name), HostPath: host}}
		if !w.fill(&it.e, fi) {
			continue
		}
		if it.e.Type == sources.Symlink {
			links = append(links, len(j.items))
		}
		j.items = append(j.items, it)
	}
	w.readLinks(j.items, links)
	for i := range j.items {
		it := &j.items[i]
		if it.drop {
			continue
		}
		if w.ex.ByMetadata(&it.e) {
			it.drop = true
			continue
		}
		if it.e.Type == sources.Dir {
			it.sub = &dirJob{host: it.e.HostPath, snap: it.e.Path, entry: &it.e}
			j.subs = append(j.subs, it.sub)
		}
	}
}

// readLinks fills in the targets of the symlinks among items, several
// requests at once. A link that vanished is reported and dropped; one
// that cannot be read is reported and kept without a target.
func (w *walker) readLinks(items []item, links []int) {
	var g errgroup.Group
	g.SetLimit(linkLookups)
	for _, i := range links {
		it := &items[i]
		g.Go(func() error {
			target, err := w.src.client.ReadLink(it.e.HostPath)
			err = w.src.lost(err)
			switch {
			case err == nil:
				it.e.LinkTarget = target
			case errors.Is(err, fs.ErrNotExist):
				it.drop = true
				it.fails = append(it.fails, failure{it.e.HostPath,
					fmt.Errorf("%w: readlink %s: %w", sources.ErrVanished, it.e.HostPath, err)})
			default:
				it.fails = append(it.fails, failure{it.e.HostPath, &fs.PathError{Op: "readlink", Path: it.e.HostPath, Err: err}})
			}
			return nil
		})
	}
	_ = g.Wait()
}

// peek serves the marker rules: up to n bytes from the start of dir/name.
// Names are checked against the listing first, so directories without a
// marker cost no request.
func (w *walker) peek(dir, name string, n int, names map[string]bool) ([]byte, error) {
	p := join(dir, name)
	if !names[name] {
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	if n <= 0 {
		return nil, nil
	}
	f, err := w.src.client.OpenFile(p, os.O_RDONLY)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer f.Close()
	buf := make([]byte, n)
	got, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, &fs.PathError{Op: "read", Path: p, Err: err}
	}
	return buf[:got], nil
}

// join appends a name to a remote directory path.
func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// joinSnap appends a name to a snapshot path ("" is the snapshot root).
func joinSnap(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
