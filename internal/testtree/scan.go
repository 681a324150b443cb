package testtree

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// modeOf converts a Linux st_mode to a Go fs.FileMode with the type bits,
// permissions, setuid, setgid and sticky.
func modeOf(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFREG:
	default:
		mode |= fs.ModeIrregular
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// listXattrs returns the names of p's extended attributes in listxattr
// order, not following a symlink. A file system without xattrs has none.
func listXattrs(p string) ([]string, error) {
	buf := make([]byte, 4096)
	for {
		n, err := unix.Llistxattr(p, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, 2*len(buf))
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("listxattr %s: %w", p, err)
		}
		var names []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if name != "" {
				names = append(names, name)
			}
		}
		return names, nil
	}
}

// listUserXattrs is listXattrs restricted to the user.* namespace, the only
// one a test can set without privileges and expect back from a restore.
func listUserXattrs(p string) ([]string, error) {
	names, err := listXattrs(p)
	return slices.DeleteFunc(names, func(n string) bool { return !strings.HasPrefix(n, "user.") }), err
}

// getXattr returns the value of one attribute, never nil.
func getXattr(p, name string) ([]byte, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", p, name, err)
		}
		return buf[:n:n], nil
	}
}

// orderXattrs returns attrs in the order of names (what listxattr
// reported), keeping attributes names does not mention at the end.
func orderXattrs(attrs []Xattr, names []string) []Xattr {
	out := make([]Xattr, 0, len(attrs))
	for _, name := range names {
		if i := slices.IndexFunc(attrs, func(x Xattr) bool { return x.Name == name }); i >= 0 {
			out = append(out, attrs[i])
		}
	}
	for _, x := range attrs {
		if !slices.ContainsFunc(out, func(o Xattr) bool { return o.Name == x.Name }) {
			out = append(out, x)
		}
	}
	return out
}

// entry is one object found by scan.
type entry struct {
	path         string
	host         string
	mode         fs.FileMode
	size         int64
	blocks       int64
	mtime, atime time.Time
	uid, gid     uint32
	target       string
	rdev         uint64
	ino, dev     uint64
	nlink        uint64
	xattrs       []Xattr
}

// scan lstat()s every entry below root (root included, as path "") without
// following symlinks. Directories it cannot read are errors.
func scan(root string, allXattrs bool) (map[string]*entry, error) {
	out := map[string]*entry{}
	var walk func(rel string) error
	walk = func(rel string) error {
		host := root
		if rel != "" {
			host = root + "/" + rel
		}
		var st unix.Stat_t
		if err := unix.Lstat(host, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", host, err)
		}
		e := &entry{
			path: rel, host: host, mode: modeOf(st.Mode), size: st.Size, blocks: st.Blocks,
			mtime: time.Unix(st.Mtim.Unix()), atime: time.Unix(st.Atim.Unix()),
			uid: st.Uid, gid: st.Gid, ino: st.Ino, dev: st.Dev, nlink: uint64(st.Nlink),
		}
		if e.mode&fs.ModeDevice != 0 {
			e.rdev = st.Rdev
		}
		if e.mode&fs.ModeSymlink != 0 {
			t, err := os.Readlink(host)
			if err != nil {
				return err
			}
			e.target = t
		}
		list := listUserXattrs
		if allXattrs {
			list = listXattrs
		}
		names, err := list(host)
		if err != nil {
			return err
		}
		for _, name := range names {
			v, err := getXattr(host, name)
			if err != nil {
				return err
			}
			e.xattrs = append(e.xattrs, Xattr{Name: name, Value: v})
		}
		out[rel] = e
		if !e.mode.IsDir() {
			return nil
		}
		ents, err := os.ReadDir(host)
		if err != nil {
			return fmt.Errorf("read directory %s: %w", host, err)
		}
		for _, d := range ents {
			child := d.Name()
			if rel != "" {
				child = rel + "/" + child
			}
			if err := walk(child); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk("")
}

// hashFile returns the SHA-256 of a file's content, without moving its
// access time where the kernel allows (owner or root), so that comparing
// twice gives the same answer.
func hashFile(p string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.EPERM) {
		f, err = os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("read %s: %w", p, err)
	}
	h.Sum(sum[:0])
	return sum, nil
}
