package testtree

import (
	"io/fs"
	"slices"
	"strings"
	"time"
)

// Features says which optional kinds of content a fixture holds.
type Features struct {
	Devices   bool // block and character device nodes (mknod needs root)
	Ownership bool // entries owned by other users and groups (chown needs root)
	Xattrs    bool // user.* extended attributes (file-system support)
	Sparse    bool // the sparse file really has holes (file-system support)
	Socket    bool // a Unix socket
	// Unreadable is set when Options.Unreadable added entries that only a
	// privileged reader can read.
	Unreadable bool
}

// missing lists the features set in want but not in f.
func (f Features) missing(want Features) []string {
	var out []string
	check := func(name string, w, have bool) {
		if w && !have {
			out = append(out, name)
		}
	}
	check("devices", want.Devices, f.Devices)
	check("ownership", want.Ownership, f.Ownership)
	check("xattrs", want.Xattrs, f.Xattrs)
	check("sparse", want.Sparse, f.Sparse)
	check("socket", want.Socket, f.Socket)
	check("unreadable", want.Unreadable, f.Unreadable)
	return out
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte // never nil; empty values are []byte{}
}

// File is one entry of a fixture: what Build made, and what the file system
// then reported for it.
type File struct {
	// Path is slash-separated and relative to the fixture root, raw bytes;
	// the root itself is "".
	Path string
	// Mode holds the type bits, permissions, setuid, setgid and sticky, as a
	// Go fs.FileMode.
	Mode fs.FileMode
	// Size is the logical size of a regular file (including holes).
	Size int64
	// ModTime and AccessTime are the times Build set, to the nanosecond.
	// Build itself reads nothing after setting them, but any later listing
	// of a directory or reading of a symlink moves its access time (and
	// reading a file does too, unless opened with O_NOATIME).
	ModTime, AccessTime time.Time
	UID, GID            uint32
	// User and Group are the names this host has for UID and GID, "" when
	// it has none.
	User, Group string
	// LinkTarget is a symlink's target, raw bytes.
	LinkTarget string
	// Xattrs are the user.* attributes, in the order listxattr returns them.
	Xattrs []Xattr
	// SHA256 is the hash of a regular file's content.
	SHA256 [32]byte
	// Rdev is the device number of a block or character device.
	Rdev uint64
	// HardLink names the first path (in manifest order) of the hard-link
	// group this entry belongs to, "" when the entry has a single name or is
	// that first path.
	HardLink string
	// Sparse marks a file written with holes.
	Sparse bool
	// Unreadable marks entries a reader without privileges cannot read
	// (a 0000 file, a 0000 directory, the children of a directory without
	// search permission).
	Unreadable bool

	// Observed by lstat after the build; the file system chooses these.
	Inode, DeviceID, Links uint64
	ChangeTime             time.Time
}

// IsDir reports whether f is a directory.
func (f *File) IsDir() bool { return f.Mode.IsDir() }

// IsRegular reports whether f is a regular file.
func (f *File) IsRegular() bool { return f.Mode.IsRegular() }

// Base returns the last path component; "" for the root.
func (f *File) Base() string {
	return f.Path[strings.LastIndexByte(f.Path, '/')+1:]
}

// Manifest describes a built fixture.
type Manifest struct {
	// Root is the absolute path of the fixture directory.
	Root string
	// Files lists every entry, the root first, in the order a walker visits
	// them: parents before children, siblings sorted by raw name bytes.
	Files    []File
	Features Features
	// Privileged is true when the fixture was built by root.
	Privileged bool

	index map[string]int
}

// Lookup returns the entry at path ("" for the root).
func (m *Manifest) Lookup(path string) (*File, bool) {
	if m.index == nil {
		m.index = make(map[string]int, len(m.Files))
		for i := range m.Files {
			m.index[m.Files[i].Path] = i
		}
	}
	i, ok := m.index[path]
	if !ok {
		return nil, false
	}
	return &m.Files[i], true
}

// HardLinkGroups returns the paths of every hard-link group (two or more
// names for one inode), each group in manifest order.
func (m *Manifest) HardLinkGroups() [][]string {
	groups := map[string][]string{}
	var order []string
	for i := range m.Files {
		f := &m.Files[i]
		first := f.HardLink
		if first == "" {
			first = f.Path
		}
		if _, ok := groups[first]; !ok {
			order = append(order, first)
		}
		groups[first] = append(groups[first], f.Path)
	}
	var out [][]string
	for _, first := range order {
		if g := groups[first]; len(g) > 1 {
			out = append(out, g)
		}
	}
	return out
}

// comparePaths orders slash-separated paths the way a walker visits them:
// component by component, each compared as raw bytes, so a directory comes
// right before its children ("a", "a/b", "a-c" rather than "a", "a-c", "a/b").
func comparePaths(a, b string) int {
	for {
		ca, ra, moreA := strings.Cut(a, "/")
		cb, rb, moreB := strings.Cut(b, "/")
		if c := strings.Compare(ca, cb); c != 0 {
			return c // the root "" sorts before everything
		}
		switch {
		case !moreA && !moreB:
			return 0
		case !moreA:
			return -1
		case !moreB:
			return 1
		}
		a, b = ra, rb
	}
}

// ComparePaths orders two manifest paths in walk order: parents before their
// children, siblings by raw name bytes. It suits slices.SortFunc.
func ComparePaths(a, b string) int { return comparePaths(a, b) }

func (m *Manifest) sort() {
	slices.SortFunc(m.Files, func(a, b File) int { return comparePaths(a.Path, b.Path) })
	m.index = nil
}
