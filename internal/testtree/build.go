package testtree

import (
	"crypto/sha256"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Options shape a fixture. The zero value builds the standard tree.
type Options struct {
	// Seed makes content and times; 0 means 1. Two builds with the same
	// options hold the same names, content, modes and times.
	Seed uint64
	// SmallFiles is how many small files the directory many/ holds; 0
	// means 1000.
	SmallFiles int
	// Depth is how many nested directories deep/ has; 0 means 48. Values
	// below 40 are raised to 40: deep trees are part of the point.
	Depth int
	// Unreadable adds unreadable/: a 0000 directory, a 0000 file and a
	// directory without search permission. Only a reader without
	// privileges is kept out of them; Build registers a cleanup that makes
	// them removable again.
	Unreadable bool
	// UnreadableOnly builds nothing but unreadable/ (implies Unreadable):
	// the fixture a test running without privileges needs to see a source
	// fail to read. It requires no features, even with CI=true.
	UnreadableOnly bool
	// Require lists features Build must create; it fails the test when one
	// of them is impossible here. With CI=true every feature except
	// Unreadable is required, so CI must run as root on a file system with
	// user xattrs and holes: a CI run that cannot make device nodes or
	// foreign owners would otherwise pass without ever testing them.
	Require Features
}

func (o Options) withDefaults() Options {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.SmallFiles <= 0 {
		o.SmallFiles = 1000
	}
	if o.UnreadableOnly {
		o.Unreadable = true
	}
	if o.Depth <= 0 {
		o.Depth = 48
	}
	o.Depth = max(o.Depth, 40)
	return o
}

// node is one entry while it is being built.
type node struct {
	File
	perm      fs.FileMode // permission and special bits to chmod, applied after chown
	chown     bool        // chown to UID/GID
	blockDirs bool        // directory made unreadable at the very end
	leader    *node       // first name of a hard-link group
}

// builder creates the fixture under root and records what it made.
type builder struct {
	t          testing.TB
	root       string
	opts       Options
	rng        *rand.Rand
	nodes      map[string]*node
	order      []string // creation order, for times and chmod
	features   Features
	privileged bool
	errs       []error // problems with optional features, reported together
}

// baseTime is where generated modification times start; far from "now" so
// that nothing a test does by accident (touching a file) looks unchanged.
var baseTime = time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)

// Build creates the fixture in dir (created if missing; it must be empty)
// and returns its manifest. It fails the test on any error.
func Build(t testing.TB, dir string, opts Options) *Manifest {
	t.Helper()
	opts = opts.withDefaults()
	root, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("testtree: %v", err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatalf("testtree: %v", err)
	}
	if ents, err := os.ReadDir(root); err != nil {
		t.Fatalf("testtree: %v", err)
	} else if len(ents) > 0 {
		t.Fatalf("testtree: %s is not empty", root)
	}
	b := &builder{
		t:          t,
		root:       root,
		opts:       opts,
		rng:        rand.New(rand.NewPCG(opts.Seed, 0x63616972_6e747265)),
		nodes:      map[string]*node{},
		privileged: os.Geteuid() == 0,
	}
	b.features.Socket = true
	b.features.Xattrs = true
	b.features.Devices = b.privileged
	b.features.Ownership = b.privileged

	b.add("", fs.ModeDir|0o755)
	b.populate()
	b.finish()
	m := b.manifest()
	b.check(m)
	return m
}

// fail stops the build for errors that are never acceptable.
func (b *builder) fail(format string, args ...any) {
	b.t.Helper()
	b.t.Fatalf("testtree: "+format, args...)
}

// abs returns the host path of a fixture path.
func (b *builder) abs(p string) string {
	if p == "" {
		return b.root
	}
	return b.root + "/" + p
}

// add registers a new entry with generated times and returns it.
func (b *builder) add(p string, mode fs.FileMode) *node {
	if _, dup := b.nodes[p]; dup {
		b.fail("duplicate path %q", p)
	}
	mtime := generatedTime(p)
	n := &node{File: File{
		Path:       p,
		Mode:       mode,
		ModTime:    mtime,
		AccessTime: mtime.Add(17*time.Minute + 3),
		UID:        uint32(os.Geteuid()),
		GID:        uint32(os.Getegid()),
	}, perm: mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
	b.nodes[p] = n
	b.order = append(b.order, p)
	return n
}

func (b *builder) dir(p string, perm fs.FileMode) *node {
	n := b.add(p, fs.ModeDir|perm)
	if err := os.Mkdir(b.abs(p), 0o700); err != nil {
		b.fail("%v", err)
	}
	return n
}

func (b *builder) file(p string, perm fs.FileMode, content []byte) *node {
	n := b.add(p, perm)
	if err := os.WriteFile(b.abs(p), content, 0o600); err != nil {
		b.fail("%v", err)
	}
	n.Size = int64(len(content))
	n.SHA256 = sha256.Sum256(content)
	return n
}

// sparse writes the given extents into a file of size bytes, leaving holes
// everywhere else.
func (b *builder) sparse(p string, size int64, extents map[int64][]byte) *node {
	n := b.add(p, 0o644)
	f, err := os.OpenFile(b.abs(p), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		b.fail("%v", err)
	}
	logical := make([]byte, size)
	for off, data := range extents {
		if _, err := f.WriteAt(data, off); err != nil {
			b.fail("%v", err)
		}
		copy(logical[off:], data)
	}
	if err := f.Truncate(size); err != nil {
		b.fail("%v", err)
	}
	if err := f.Close(); err != nil {
		b.fail("%v", err)
	}
	n.Size = size
	n.SHA256 = sha256.Sum256(logical)
	n.Sparse = true
	return n
}

func (b *builder) symlink(p, target string) *node {
	n := b.add(p, fs.ModeSymlink|0o777)
	if err := os.Symlink(target, b.abs(p)); err != nil {
		b.fail("%v", err)
	}
	n.LinkTarget = target
	return n
}

// hardlink adds another name for the inode at existing (never following a
// symlink).
func (b *builder) hardlink(p, existing string) *node {
	leader := b.nodes[existing]
	if leader == nil {
		b.fail("hardlink %q: no entry %q", p, existing)
	}
	for leader.leader != nil {
		leader = leader.leader
	}
	if err := unix.Linkat(unix.AT_FDCWD, b.abs(leader.Path), unix.AT_FDCWD, b.abs(p), 0); err != nil {
		b.fail("link %s: %v", p, err)
	}
	n := &node{File: File{Path: p}, leader: leader}
	b.nodes[p] = n
	b.order = append(b.order, p)
	return n
}

func (b *builder) fifo(p string, perm fs.FileMode) *node {
	n := b.add(p, fs.ModeNamedPipe|perm)
	if err := unix.Mkfifo(b.abs(p), 0o600); err != nil {
		b.fail("mkfifo %s: %v", p, err)
	}
	return n
}

// device makes a block or character device node; without privileges it
// records that devices are unavailable and makes nothing.
func (b *builder) device(p string, mode fs.FileMode, major, minor uint32) {
	if !b.features.Devices {
		return
	}
	typ := uint32(unix.S_IFBLK)
	if mode&fs.ModeCharDevice != 0 {
		typ = unix.S_IFCHR
	}
	rdev := unix.Mkdev(major, minor)
	if err := unix.Mknod(b.abs(p), typ|0o600, int(rdev)); err != nil {
		b.features.Devices = false
		b.errs = append(b.errs, fmt.Errorf("mknod %s: %w", p, err))
		return
	}
	n := b.add(p, mode)
	n.Rdev = rdev
}

// socket leaves a Unix socket file at p. The socket is bound through
// /proc/self/fd so that long fixture paths stay under the 108-byte limit
// of socket addresses.
func (b *builder) socket(p string, perm fs.FileMode) {
	dir, name := filepath.Split(b.abs(p))
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.fail("open %s: %v", dir, err)
	}
	defer unix.Close(dfd)
	sfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.features.Socket = false
		b.errs = append(b.errs, fmt.Errorf("socket: %w", err))
		return
	}
	defer unix.Close(sfd)
	addr := &unix.SockaddrUnix{Name: "/proc/self/fd/" + strconv.Itoa(dfd) + "/" + name}
	if err := unix.Bind(sfd, addr); err != nil {
		b.features.Socket = false
		b.errs = append(b.errs, fmt.Errorf("bind %s: %w", p, err))
		return
	}
	b.add(p, fs.ModeSocket|perm)
}

// xattr sets a user.* attribute; a file system without them turns the
// feature off instead of failing.
func (b *builder) xattr(p, name string, value []byte) {
	n := b.nodes[p]
	if !b.features.Xattrs {
		return
	}
	if err := unix.Lsetxattr(b.abs(p), name, value, 0); err != nil {
		b.features.Xattrs = false
		b.errs = append(b.errs, fmt.Errorf("setxattr %s %s: %w", p, name, err))
		return
	}
	if value == nil {
		value = []byte{}
	}
	n.Xattrs = append(n.Xattrs, Xattr{Name: name, Value: slices.Clone(value)})
}

// owner records that p belongs to uid and gid; applied in finish.
func (b *builder) owner(n *node, uid, gid uint32) {
	if !b.features.Ownership {
		return
	}
	n.UID, n.GID, n.chown = uid, gid, true
}

// setTimes overrides the generated times of n.
func setTimes(n *node, mtime, atime time.Time) {
	n.ModTime, n.AccessTime = mtime, atime
}

// generatedTime derives an entry's modification time from its path, so
// that it does not depend on which optional entries exist before it.
func generatedTime(p string) time.Time {
	h := fnv.New64a()
	h.Write([]byte(p))
	v := h.Sum64()
	const span = 3 * 365 * 24 * 3600 // seconds
	return baseTime.Add(time.Duration(v%span)*time.Second + time.Duration(v/span%1e9))
}
