package restore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo/tree"
)

// metaTarget is what metadata is applied to: an open descriptor (fd >= 0),
// which saves a path lookup per call and can never follow a symlink, or
// else a path, with calls that do not follow a final symlink.
type metaTarget struct {
	fd   int
	path string
}

func pathTarget(p string) metaTarget { return metaTarget{fd: -1, path: p} }

// unixMode converts a Go file mode to the permission and special bits of
// chmod(2).
func unixMode(m fs.FileMode) uint32 {
	mode := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		mode |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		mode |= unix.S_ISVTX
	}
	return mode
}

// timespec converts t, which may lie before 1970 or after 2262 (where
// restic's UnixNano overflows), to what utimensat expects: whole seconds
// and a non-negative nanosecond part.
func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// isPermission reports a permission error.
func isPermission(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// applyMetadata restores ownership, extended attributes, times and mode of
// node on t, in the order that keeps each step from undoing another: chown
// clears setuid and setgid, so chmod comes last; times come after the
// xattrs. existed says the entry was there before the restore, so stale
// attributes must be removed and ownership always set; otherGroup says the
// new entry may have taken a setgid directory's group. It returns the first
// error; xattr problems are only warnings.
func (rs *restorer) applyMetadata(loc string, t metaTarget, m *meta, existed, otherGroup bool) error {
	var first error
	keep := func(err error) {
		// Without root, ownership and the metadata of entries owned by
		// others cannot be restored; restic ignores those errors too.
		if err == nil || first != nil || rs.euid != 0 && isPermission(err) {
			return
		}
		first = err
	}
	if existed || otherGroup || int(m.uid) != rs.euid || int(m.gid) != rs.egid {
		var err error
		if t.fd >= 0 {
			err = unix.Fchown(t.fd, int(m.uid), int(m.gid))
		} else {
			err = unix.Lchown(t.path, int(m.uid), int(m.gid))
		}
		if err != nil {
			keep(fmt.Errorf("chown %s to %d:%d: %w", t.path, m.uid, m.gid, err))
		}
	}
	if len(m.xattrs) > 0 || existed {
		rs.restoreXattrs(loc, t, m.xattrs, existed)
	}
	ts := [2]unix.Timespec{m.atime, m.mtime}
	if t.fd >= 0 {
		keep(wrapPath("set times of", t.path, futimens(t.fd, &ts)))
	} else {
		keep(wrapPath("set times of", t.path, unix.UtimesNanoAt(unix.AT_FDCWD, t.path, ts[:], unix.AT_SYMLINK_NOFOLLOW)))
	}
	if !m.symlink {
		// Symlinks have no mode of their own on Linux.
		mode := unixMode(m.mode)
		var err error
		if t.fd >= 0 {
			err = unix.Fchmod(t.fd, mode)
		} else {
			err = unix.Fchmodat(unix.AT_FDCWD, t.path, mode, 0)
		}
		keep(wrapPath("chmod", t.path, err))
	}
	return first
}

func wrapPath(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s %s: %w", op, p, err)
}

// restoreXattrs sets the selected attributes in stored order and, on an
// entry that existed before, removes selected attributes the node does not
// have (restic does both).
func (rs *restorer) restoreXattrs(loc string, t metaTarget, xattrs []tree.ExtendedAttribute, existed bool) {
	want := make(map[string]bool, len(xattrs))
	for _, a := range xattrs {
		if !rs.xsel.selects(a.Name) {
			continue
		}
		want[a.Name] = true
		value := a.Value
		if value == nil {
			value = []byte{}
		}
		var err error
		if t.fd >= 0 {
			err = unix.Fsetxattr(t.fd, a.Name, value, 0)
		} else {
			err = unix.Lsetxattr(t.path, a.Name, value, 0)
		}
		if err != nil {
			rs.warn(loc, fmt.Errorf("set extended attribute %q on %s: %w", a.Name, t.path, err))
		}
	}
	if !existed {
		return
	}
	names, err := listXattrs(t)
	if err != nil {
		if !errors.Is(err, unix.ENOTSUP) {
			rs.warn(loc, fmt.Errorf("list extended attributes of %s: %w", t.path, err))
		}
		return
	}
	for _, name := range names {
		if want[name] || !rs.xsel.selects(name) {
			continue
		}
		var err error
		if t.fd >= 0 {
			err = unix.Fremovexattr(t.fd, name)
		} else {
			err = unix.Lremovexattr(t.path, name)
		}
		if err != nil {
			rs.warn(loc, fmt.Errorf("remove extended attribute %q from %s: %w", name, t.path, err))
		}
	}
}

// listXattrs returns the names of t's extended attributes.
func listXattrs(t metaTarget) ([]string, error) {
	list := func(buf []byte) (int, error) {
		if t.fd >= 0 {
			return unix.Flistxattr(t.fd, buf)
		}
		return unix.Llistxattr(t.path, buf)
	}
	for range 4 {
		n, err := list(nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		n, err = list(buf)
		if errors.Is(err, unix.ERANGE) {
			continue // the list grew in between
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, b := range bytes.Split(buf[:n], []byte{0}) {
			if len(b) > 0 {
				names = append(names, string(b))
			}
		}
		return names, nil
	}
	return nil, unix.ERANGE
}

// pathMetadata applies a node's metadata by path and records a failure.
func (rs *restorer) pathMetadata(loc, p string, n *tree.Node, existed, otherGroup bool) {
	m := metaOf(n)
	if err := rs.applyMetadata(loc, pathTarget(p), &m, existed, otherGroup); err != nil {
		rs.fail(loc, err)
	}
}
