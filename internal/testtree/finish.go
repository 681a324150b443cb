package testtree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/internal/testtools"
)

// finish applies owners, modes and times, in the order that keeps each
// step from undoing an earlier one: chown clears setuid and setgid, so
// chmod follows it; creating entries changes a directory's mtime, so times
// go last, children before parents; directories that lock readers out are
// closed at the very end.
func (b *builder) finish() {
	for _, p := range b.order {
		n := b.nodes[p]
		if n.leader != nil || !n.chown {
			continue
		}
		if err := unix.Lchown(b.abs(p), int(n.UID), int(n.GID)); err != nil {
			b.features.Ownership = false
			b.errs = append(b.errs, fmt.Errorf("lchown %s: %w", p, err))
			n.UID, n.GID = uint32(os.Geteuid()), uint32(os.Getegid())
		}
	}
	if !b.features.Ownership {
		// Undo partial ownership so the manifest stays uniform.
		for _, p := range b.order {
			if n := b.nodes[p]; n.chown {
				n.UID, n.GID = uint32(os.Geteuid()), uint32(os.Getegid())
				_ = unix.Lchown(b.abs(p), int(n.UID), int(n.GID))
			}
		}
	}
	for _, p := range b.order {
		n := b.nodes[p]
		if n.leader != nil || n.Mode&fs.ModeSymlink != 0 || n.blockDirs {
			continue
		}
		if err := os.Chmod(b.abs(p), n.perm); err != nil {
			b.fail("chmod %s: %v", p, err)
		}
	}
	for i := len(b.order) - 1; i >= 0; i-- {
		p := b.order[i]
		n := b.nodes[p]
		if n.leader != nil {
			continue
		}
		ts := []unix.Timespec{timespec(n.AccessTime), timespec(n.ModTime)}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, b.abs(p), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			b.fail("utimensat %s: %v", p, err)
		}
	}
	// Directories are created in walk order, so the reverse order closes
	// the inner ones while the outer ones can still be searched.
	var blocked []string
	for i := len(b.order) - 1; i >= 0; i-- {
		p := b.order[i]
		if n := b.nodes[p]; n.blockDirs {
			if err := os.Chmod(b.abs(p), n.perm); err != nil {
				b.fail("chmod %s: %v", p, err)
			}
			blocked = append(blocked, b.abs(p))
		}
	}
	if len(blocked) > 0 {
		b.t.Cleanup(func() {
			for i := len(blocked) - 1; i >= 0; i-- {
				_ = os.Chmod(blocked[i], 0o700)
			}
		})
	}
	MakeRemovable(b.t, b.root)
}

// MakeRemovable registers a cleanup that gives the owner write and search
// permission on every directory below dir, so that t.TempDir can delete a
// fixture, or a restored copy of one, that holds read-only directories.
// Root needs none of this, and nothing is done for it. Register it after
// creating the temporary directory: cleanups run last-in first-out.
func MakeRemovable(t testing.TB, dir string) {
	if os.Geteuid() == 0 {
		return
	}
	t.Cleanup(func() {
		// WalkDir calls back for a directory before reading it, so the
		// chmod comes first and opens it up for the walk.
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o700)
			}
			return nil
		})
	})
}

// timespec converts t, which may lie before 1970, to a Timespec with a
// non-negative nanosecond part as utimensat requires.
func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// manifest observes every entry with lstat and assembles the manifest.
func (b *builder) manifest() *Manifest {
	m := &Manifest{Root: b.root, Privileged: b.privileged}
	users := map[uint32]string{}
	groups := map[uint32]string{}
	for _, p := range b.order {
		n := b.nodes[p]
		if n.leader != nil {
			l := n.leader
			f := l.File
			f.Path = p
			f.Xattrs = slices.Clone(l.Xattrs)
			n.File = f
		}
		f := n.File
		if _, ok := users[f.UID]; !ok {
			users[f.UID] = lookupUser(f.UID)
		}
		if _, ok := groups[f.GID]; !ok {
			groups[f.GID] = lookupGroup(f.GID)
		}
		f.User, f.Group = users[f.UID], groups[f.GID]
		m.Files = append(m.Files, f)
	}
	m.sort()
	// Hard links point at the first name in manifest order.
	leaders := map[string]bool{}
	for _, n := range b.nodes {
		if n.leader != nil {
			leaders[n.leader.Path] = true
		}
	}
	firsts := map[string]string{} // leader path -> first path
	for i := range m.Files {
		f := &m.Files[i]
		leader := f.Path
		if n := b.nodes[f.Path]; n.leader != nil {
			leader = n.leader.Path
		} else if !leaders[f.Path] {
			continue
		}
		if first, ok := firsts[leader]; ok {
			f.HardLink = first
		} else {
			firsts[leader] = f.Path
		}
	}
	b.observe(m)
	if b.opts.UnreadableOnly {
		b.features = Features{}
	} else if b.features.Sparse = b.holes(m); !b.features.Sparse {
		b.errs = append(b.errs, errors.New("the file system stored the sparse file without holes"))
	}
	b.features.Unreadable = b.opts.Unreadable
	m.Features = b.features
	return m
}

// observe fills what the file system chose (inode, device, links, ctime)
// and the listxattr order, and checks that what Build set came out as
// intended: a file system that cannot store a time or a mode would make
// every later comparison lie.
func (b *builder) observe(m *Manifest) {
	for i := range m.Files {
		f := &m.Files[i]
		var st unix.Stat_t
		if err := unix.Lstat(b.abs(f.Path), &st); err != nil {
			if !b.privileged && underUnreadable(f.Path) {
				continue // behind a directory we locked on purpose
			}
			b.fail("lstat %s: %v", f.Path, err)
		}
		f.Inode, f.DeviceID, f.Links = st.Ino, st.Dev, uint64(st.Nlink)
		f.ChangeTime = time.Unix(st.Ctim.Unix())
		if got := modeOf(st.Mode); got != f.Mode {
			b.fail("%s: mode %v after building, want %v", f.Path, got, f.Mode)
		}
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(f.ModTime) {
			b.fail("%s: mtime %v after building, want %v (the file system cannot store it)", f.Path, got, f.ModTime)
		}
		if st.Uid != f.UID || st.Gid != f.GID {
			b.fail("%s: owner %d:%d after building, want %d:%d", f.Path, st.Uid, st.Gid, f.UID, f.GID)
		}
		if f.IsRegular() && st.Size != f.Size {
			b.fail("%s: size %d after building, want %d", f.Path, st.Size, f.Size)
		}
		if len(f.Xattrs) > 0 {
			names, err := listUserXattrs(b.abs(f.Path))
			if err != nil {
				b.fail("%s: %v", f.Path, err)
			}
			f.Xattrs = orderXattrs(f.Xattrs, names)
		}
	}
}

// underUnreadable reports whether p lies inside the locked part of
// unreadable/.
func underUnreadable(p string) bool {
	return strings.HasPrefix(p, "unreadable/dir/") || strings.HasPrefix(p, "unreadable/noexec/")
}

// holes reports whether the sparse files really have holes.
func (b *builder) holes(m *Manifest) bool {
	for i := range m.Files {
		f := &m.Files[i]
		if !f.Sparse {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(b.abs(f.Path), &st); err != nil {
			b.fail("lstat %s: %v", f.Path, err)
		}
		if st.Blocks*512 >= st.Size {
			return false
		}
	}
	return true
}

// check fails the build when a required feature is missing; with CI=true
// every feature is required.
func (b *builder) check(m *Manifest) {
	b.t.Helper()
	want := b.opts.Require
	if testtools.InCI() && !b.opts.UnreadableOnly {
		want.Xattrs, want.Sparse, want.Socket, want.Devices, want.Ownership = true, true, true, true, true
	}
	if missing := m.Features.missing(want); len(missing) > 0 {
		b.fail("required features unavailable: %s (%v)", strings.Join(missing, ", "), errors.Join(b.errs...))
	}
	for _, err := range b.errs {
		b.t.Logf("testtree: feature left out: %v", err)
	}
}

func lookupUser(uid uint32) string {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return ""
	}
	return u.Username
}

func lookupGroup(gid uint32) string {
	g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10))
	if err != nil {
		return ""
	}
	return g.Name
}
