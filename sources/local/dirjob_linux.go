package local

import (
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/sources"
)

// Test hooks, nil outside tests: they run on worker goroutines after a
// directory was listed and after an entry was lstat()ed, so tests can
// change the tree at exactly those moments.
var (
	testHookListed  func(dir string)
	testHookStatted func(path string)
)

// chunkSize is how many entries one task lstat()s: big enough that the
// scheduling is noise, small enough that a large directory is spread over
// all workers and the visitor can start on it early.
const chunkSize = 64

// chunksAhead bounds the chunks of one directory queued before the walk
// reaches them: a directory of millions of files must not be held in
// memory as entries, only as names (as restic holds it).
const chunksAhead = 8

// dirJob reads one directory the walk descends into.
type dirJob struct {
	key       []uint32
	parentFD  int    // directory holding this one; -1 to open host by path
	name      string // name in the parent, a C string (see cName) when parentFD >= 0
	host      string // absolute path on the host
	snap      string // path in the snapshot
	entry     sources.Entry
	targetDev uint64 // st_dev of the target this directory belongs to
	// mountPoint marks a directory on another file system under
	// OneFileSystem: it is kept, its contents are not, as in restic.
	mountPoint bool

	state atomic.Int32 // notSubmitted, submittedByWalker, submittedAhead

	// Results, valid once done is closed.
	done    chan struct{}
	fd      int
	names   []string
	err     error
	skipAll bool     // an Excluder without ExcludedContents left the directory out
	marked  bool     // a marker file excludes the contents ...
	keep    []string // ... except these names
	chunks  []*chunkJob
	queued  int // chunks[:queued] have been queued or run; the walker queues the rest
}

func newDirJob(key []uint32, parentFD int, name, host, snap string, e *sources.Entry, targetDev uint64) *dirJob {
	return &dirJob{
		key: key, parentFD: parentFD, name: name, host: host, snap: snap,
		entry: *e, targetDev: targetDev, done: make(chan struct{}), fd: -1,
	}
}

// chunkJob lstat()s the entries names[lo:hi] of a directory.
type chunkJob struct {
	key    []uint32
	dir    *dirJob
	lo, hi int

	// Results, valid once done is closed.
	done    chan struct{}
	entries []sources.Entry
	subdirs []*dirJob // parallel to entries: the job for a directory to descend into
	errs    []entryErr
}

// entryErr is a problem with one entry, reported before entries[pos].
type entryErr struct {
	pos  int
	path string
	err  error
}

// runDir opens and lists the directory, applies the marker rules and
// queues the lstat work; the first chunk it does itself.
func (p *pool) runDir(j *dirJob, sc *scratch) {
	if p.cancelled.Load() {
		j.err = errCancelled
		close(j.done)
		return
	}
	fd, err := openDir(j)
	if err != nil {
		j.err = &fs.PathError{Op: "open", Path: j.host, Err: err}
		close(j.done)
		return
	}
	p.fds.add(fd)
	j.fd = fd
	if j.mountPoint {
		close(j.done)
		return
	}
	if j.names, err = readNames(fd, sc); err != nil {
		j.err = &fs.PathError{Op: "readdirent", Path: j.host, Err: err}
		p.fds.release(fd)
		j.fd = -1
		close(j.done)
		return
	}
	if testHookListed != nil {
		testHookListed(j.host)
	}
	j.skipAll, j.marked, j.keep = p.walk.ex.Contents(&j.entry, j.peek)
	if j.skipAll {
		close(j.done)
		return
	}
	for lo := 0; lo < len(j.names); lo += chunkSize {
		j.chunks = append(j.chunks, &chunkJob{
			key: childKey(j.key, uint32(len(j.chunks))), dir: j,
			lo: lo, hi: min(lo+chunkSize, len(j.names)), done: make(chan struct{}),
		})
	}
	// This worker does the first chunk itself, right after releasing the
	// walk to visit the directory; a few more go to the other workers.
	j.queued = min(len(j.chunks), chunksAhead)
	for _, c := range j.chunks[min(1, j.queued):j.queued] {
		p.q.push(task{key: c.key, chunk: c})
	}
	close(j.done)
	if len(j.chunks) > 0 {
		p.runChunk(j.chunks[0], sc)
	}
}

// queueNext queues the next chunk of j that is not queued yet; the walk
// calls it as it finishes a chunk, so chunksAhead stay in flight. Only the
// walking goroutine calls it, after j.done.
func (p *pool) queueNext(j *dirJob) {
	if j.queued < len(j.chunks) {
		c := j.chunks[j.queued]
		j.queued++
		p.q.push(task{key: c.key, chunk: c})
	}
}

// openDir opens the directory without following a symlink put in its
// place, and without touching its access time where the kernel lets us
// (restic does the same).
func openDir(j *dirJob) (int, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if mayNoatime(j.entry.UID) {
		flags |= unix.O_NOATIME
	}
	for {
		var fd int
		var err error
		if j.parentFD >= 0 {
			fd, err = openat(j.parentFD, cName(j.name), flags)
		} else {
			fd, err = unix.Open(j.host, flags, 0)
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EPERM && flags&unix.O_NOATIME != 0:
			flags &^= unix.O_NOATIME
			continue
		}
		return fd, err
	}
}

// peek serves marker rules: name must be listed, and up to n bytes of it
// are read (following a symlink, as restic does).
func (j *dirJob) peek(name string, n int) ([]byte, error) {
	i, found := slices.BinarySearch(j.names, name)
	if !found {
		return nil, &fs.PathError{Op: "peek", Path: j.host + "/" + name, Err: fs.ErrNotExist}
	}
	if n <= 0 {
		return nil, nil
	}
	fd, err := openat(j.fd, cName(j.names[i]), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: j.host + "/" + name, Err: err}
	}
	defer closeFD(fd)
	return readUpTo(fd, n, j.host+"/"+name)
}

// readUpTo reads up to n bytes from the start of fd.
func readUpTo(fd, n int, path string) ([]byte, error) {
	buf := make([]byte, n)
	got := 0
	for got < n {
		m, err := unix.Read(fd, buf[got:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		got += m
	}
	return buf[:got], nil
}

// runChunk lstat()s a chunk of a directory's entries and fills them in,
// then prepares the subdirectories found, ahead of the walk while the
// read-ahead budget lasts.
func (p *pool) runChunk(c *chunkJob, sc *scratch) {
	defer close(c.done)
	if p.cancelled.Load() {
		return
	}
	j := c.dir
	w := p.walk
	c.entries = getEntries()
	c.subdirs = make([]*dirJob, 0, c.hi-c.lo)
	// Children's snapshot paths are the tail of their host paths whenever
	// the directory's are: then one string serves for both.
	suffix := strings.HasSuffix(j.host, "/"+j.snap)
	var users ownerCache
	for i := c.lo; i < c.hi; i++ {
		name := j.names[i]
		if j.marked && !slices.Contains(j.keep, name) {
			continue
		}
		cpath, host := sc.cpath(j.host, name)
		if w.ex.ByName(host) {
			continue
		}
		var st fileStat
		if err := lstatAt(j.fd, name, cName(name), &st); err != nil {
			c.fail(host, statError(host, err))
			continue
		}
		if testHookStatted != nil {
			testHookStatted(host)
		}
		c.entries = append(c.entries, sources.Entry{})
		e := &c.entries[len(c.entries)-1]
		if suffix {
			e.Path = host[len(host)-len(j.snap)-1-len(name):]
		} else {
			e.Path = j.snap + "/" + name
		}
		e.HostPath = host
		fill(e, &st)
		if e.Type == sources.Symlink {
			target, err := readlinkAt(j.fd, cName(name), &sc.link)
			if err != nil {
				if vanished(err) {
					c.drop()
					c.fail(host, vanishedError("readlink", host, err))
					continue
				}
				c.failKept(host, &fs.PathError{Op: "readlink", Path: host, Err: err})
			}
			e.LinkTarget = target
		}
		if w.ex.ByMetadata(e) {
			c.drop()
			continue
		}
		mountPoint := false
		if w.oneFS && st.dev != j.targetDev {
			if e.Type != sources.Dir {
				c.drop()
				continue
			}
			mountPoint = true
		}
		attrs, listErr, attrErr := readXattrs(cpath, sc)
		if listErr != nil {
			if vanished(listErr) {
				c.drop()
				c.fail(host, vanishedError("listxattr", host, listErr))
				continue
			}
			c.failKept(host, &fs.PathError{Op: "listxattr", Path: host, Err: listErr})
		}
		if attrErr != nil {
			c.failKept(host, attrErr)
		}
		e.Xattrs = attrs
		e.User, e.Group = users.names(w.src.owners, e.UID, e.GID)
		var sub *dirJob
		switch e.Type {
		case sources.File:
			e.Open = w.src.opener(host, st.ino, st.dev, st.uid)
		case sources.Dir:
			sub = newDirJob(childKey(c.key, uint32(len(c.subdirs))), j.fd, name, host, e.Path, e, j.targetDev)
			sub.mountPoint = mountPoint
		}
		c.subdirs = append(c.subdirs, sub)
	}
	for _, sub := range c.subdirs {
		if sub != nil && !p.prefetch(sub) {
			break
		}
	}
}

// drop removes the entry being filled in.
func (c *chunkJob) drop() { c.entries = c.entries[:len(c.entries)-1] }

// entryPool recycles the entry arrays of chunks: the Visitor may keep no
// pointer into them past its call (sources.Visitor), and a walk of 200k
// files would otherwise allocate 50 MB of entries.
var entryPool = sync.Pool{New: func() any {
	s := make([]sources.Entry, 0, chunkSize)
	return &s
}}

func getEntries() []sources.Entry {
	return (*entryPool.Get().(*[]sources.Entry))[:0]
}

// release returns the chunk's entries to the pool once the walk has
// visited them.
func (c *chunkJob) release() {
	entries := c.entries[:cap(c.entries)]
	clear(entries) // drop references to paths, attributes and closures
	entries = entries[:0]
	c.entries = nil
	entryPool.Put(&entries)
}

// fail records a problem before the next entry.
func (c *chunkJob) fail(path string, err error) {
	c.errs = append(c.errs, entryErr{pos: len(c.entries), path: path, err: err})
}

// failKept records a problem with the entry being filled in, which stays
// (without the part that failed): it is reported right before the entry.
func (c *chunkJob) failKept(path string, err error) {
	c.errs = append(c.errs, entryErr{pos: len(c.entries) - 1, path: path, err: err})
}

// vanished reports errors meaning the entry is gone (or is no longer what
// was listed): ENOENT, a path component that is no longer a directory,
// and, for readlink, a symlink replaced by something else.
func vanished(err error) bool {
	return err == unix.ENOENT || err == unix.ENOTDIR || err == unix.EINVAL
}

// vanishedError wraps sources.ErrVanished and the system error.
func vanishedError(op, path string, err error) error {
	return fmt.Errorf("%w: %w", sources.ErrVanished, &fs.PathError{Op: op, Path: path, Err: err})
}

// statError classifies an lstat failure.
func statError(path string, err error) error {
	if err == unix.ENOENT {
		return vanishedError("lstat", path, err)
	}
	return &fs.PathError{Op: "lstat", Path: path, Err: err}
}

func openat(dirfd int, cname *byte, flags int) (int, error) {
	for {
		fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(cname)), uintptr(flags), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(fd), nil
	}
}

func closeFD(fd int) {
	// Linux releases the descriptor even when close reports an error, so
	// there is nothing to retry.
	_ = unix.Close(fd)
}

// mayNoatime reports whether O_NOATIME is likely allowed for a file owned
// by uid: for its owner and for root. The open is retried without it on
// EPERM anyway; this only saves the failed attempt.
func mayNoatime(uid uint32) bool {
	return euid == 0 || uint32(euid) == uid
}

// euid is this process's effective user ID, read once: os.Geteuid is a
// system call every time.
var euid = os.Geteuid()
