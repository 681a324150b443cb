package local

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/sources"
)

// The walk calls the kernel directly with NUL-terminated names it keeps in
// reusable buffers: the x/sys/unix wrappers copy every path argument into
// a fresh allocation, and a re-backup of 200k unchanged files spends most
// of its time in exactly these calls.

// fileStat is what the walk needs from lstat.
type fileStat struct {
	mode                uint32 // st_mode
	uid, gid            uint32
	nlink               uint64
	ino, dev, rdev      uint64
	size                int64
	atime, mtime, ctime unix.Timespec
}

// noStatx is set once statx turned out to be missing or forbidden (old
// kernels, strict seccomp profiles); the walk then uses fstatat.
var noStatx atomic.Bool

// lstatAt stats name in the directory dirfd without following a symlink or
// triggering an automount, like lstat. cname is name NUL-terminated.
func lstatAt(dirfd int, name string, cname *byte, st *fileStat) error {
	if !noStatx.Load() {
		var sx unix.Statx_t
		for {
			_, _, e := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(cname)),
				uintptr(unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT|unix.AT_STATX_SYNC_AS_STAT),
				uintptr(unix.STATX_BASIC_STATS), uintptr(unsafe.Pointer(&sx)), 0)
			switch e {
			case 0:
				*st = fileStat{
					mode: uint32(sx.Mode), uid: sx.Uid, gid: sx.Gid, nlink: uint64(sx.Nlink),
					ino: sx.Ino, size: int64(sx.Size),
					dev:   unix.Mkdev(sx.Dev_major, sx.Dev_minor),
					rdev:  unix.Mkdev(sx.Rdev_major, sx.Rdev_minor),
					atime: unix.Timespec{Sec: sx.Atime.Sec, Nsec: int64(sx.Atime.Nsec)},
					mtime: unix.Timespec{Sec: sx.Mtime.Sec, Nsec: int64(sx.Mtime.Nsec)},
					ctime: unix.Timespec{Sec: sx.Ctime.Sec, Nsec: int64(sx.Ctime.Nsec)},
				}
				return nil
			case unix.EINTR:
				continue
			case unix.ENOSYS, unix.EPERM:
				noStatx.Store(true)
			default:
				return e
			}
			break
		}
	}
	var s unix.Stat_t
	for {
		err := unix.Fstatat(dirfd, name, &s, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		*st = fileStat{
			mode: s.Mode, uid: s.Uid, gid: s.Gid, nlink: uint64(s.Nlink), ino: s.Ino,
			size: s.Size, dev: uint64(s.Dev), rdev: uint64(s.Rdev),
			atime: s.Atim, mtime: s.Mtim, ctime: s.Ctim,
		}
		return nil
	}
}

// modeOf converts st_mode to a Go file mode with type bits, permissions,
// setuid, setgid and sticky, the way restic stores modes.
func modeOf(m uint32) (fs.FileMode, sources.Type) {
	mode := fs.FileMode(m & 0o777)
	var typ sources.Type
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		typ = sources.File
	case unix.S_IFDIR:
		mode |= fs.ModeDir
		typ = sources.Dir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
		typ = sources.Symlink
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
		typ = sources.Dev
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
		typ = sources.CharDev
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
		typ = sources.FIFO
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
		typ = sources.Socket
	default:
		mode |= fs.ModeIrregular
		typ = sources.Irregular
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
	return mode, typ
}

// fill sets e's metadata from st; names and paths are the caller's.
func fill(e *sources.Entry, st *fileStat) {
	e.Mode, e.Type = modeOf(st.mode)
	e.Size = 0
	if e.Type == sources.File {
		e.Size = st.size
	}
	e.ModTime = time.Unix(st.mtime.Sec, st.mtime.Nsec)
	e.AccessTime = time.Unix(st.atime.Sec, st.atime.Nsec)
	e.ChangeTime = time.Unix(st.ctime.Sec, st.ctime.Nsec)
	e.UID, e.GID = st.uid, st.gid
	e.Inode, e.DeviceID, e.Links = st.ino, st.dev, st.nlink
	e.Device = 0
	if e.Type == sources.Dev || e.Type == sources.CharDev {
		e.Device = st.rdev
	}
}

// readlinkAt returns the target of the symlink name in dirfd.
func readlinkAt(dirfd int, cname *byte, buf *[]byte) (string, error) {
	for {
		b := *buf
		n, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(cname)),
			uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e != 0:
			return "", e
		case int(n) == len(b):
			// Possibly truncated: grow and ask again.
			*buf = make([]byte, 2*len(b))
			continue
		}
		return string(b[:n]), nil
	}
}

// xattrUnsupported reports errors meaning "this file system or file has no
// extended attributes", which restic treats as none.
func xattrUnsupported(err error) bool {
	return err == unix.ENOTSUP || err == unix.ENODATA
}

// listXattrs lists the attribute names of the NUL-terminated path into
// *buf, growing it as needed, and returns the used part.
func listXattrs(cpath *byte, buf *[]byte) ([]byte, error) {
	for {
		b := *buf
		n, _, e := unix.Syscall(unix.SYS_LLISTXATTR, uintptr(unsafe.Pointer(cpath)),
			uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			return b[:n], nil
		case unix.EINTR:
			continue
		case unix.ERANGE:
			// Ask for the size, then retry with room to spare in case
			// attributes are being added meanwhile.
			size, _, e := unix.Syscall(unix.SYS_LLISTXATTR, uintptr(unsafe.Pointer(cpath)), 0, 0)
			if e != 0 && e != unix.EINTR {
				return nil, e
			}
			*buf = make([]byte, max(int(size)+256, 2*len(b)))
			continue
		}
		return nil, e
	}
}

// getXattr reads one attribute value into a new slice (never nil: an empty
// value is []byte{}, which restic encodes as "" and not null).
func getXattr(cpath, cname *byte, buf *[]byte) ([]byte, error) {
	for {
		b := *buf
		n, _, e := unix.Syscall6(unix.SYS_LGETXATTR, uintptr(unsafe.Pointer(cpath)), uintptr(unsafe.Pointer(cname)),
			uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0)
		switch e {
		case 0:
			return slices.Clone(b[:n:n]), nil
		case unix.EINTR:
			continue
		case unix.ERANGE:
			size, _, e := unix.Syscall6(unix.SYS_LGETXATTR, uintptr(unsafe.Pointer(cpath)), uintptr(unsafe.Pointer(cname)), 0, 0, 0, 0)
			if e != 0 && e != unix.EINTR {
				return nil, e
			}
			*buf = make([]byte, max(int(size)+256, 2*len(b)))
			continue
		}
		return nil, e
	}
}

// readXattrs returns the extended attributes of the NUL-terminated path in
// listxattr order, as restic records them. A file system without xattr
// support gives none. A listing error is returned as is; an attribute that
// disappears between listing and reading is left out; other per-attribute
// errors are collected in the second result while the rest are kept.
func readXattrs(cpath *byte, sc *scratch) (attrs []sources.Xattr, listErr, attrErr error) {
	list, err := listXattrs(cpath, &sc.xlist)
	if err != nil {
		if xattrUnsupported(err) {
			return nil, nil, nil
		}
		return nil, err, nil
	}
	if len(list) == 0 {
		return nil, nil, nil
	}
	var attrErrs []error
	for len(list) > 0 {
		i := slices.Index(list, 0)
		if i < 0 {
			i = len(list) // the kernel always terminates names; be safe
		}
		cname := list[:min(i+1, len(list))]
		name := string(list[:i])
		list = list[min(i+1, len(list)):]
		if name == "" {
			continue
		}
		if cname[len(cname)-1] != 0 {
			cname = append([]byte(name), 0)
		}
		value, err := getXattr(cpath, &cname[0], &sc.xval)
		switch {
		case err == nil:
			attrs = append(attrs, sources.Xattr{Name: name, Value: value})
		case xattrUnsupported(err):
			// Removed since the listing.
		default:
			attrErrs = append(attrErrs, &fs.PathError{Op: "getxattr " + name, Path: cstring(cpath), Err: err})
		}
	}
	return attrs, nil, errors.Join(attrErrs...)
}

// cstring returns the Go string for a NUL-terminated C string.
func cstring(p *byte) string {
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// readNames reads every entry name of the open directory fd, without "."
// and "..", into one NUL-separated slab and returns the names as strings
// pointing into it: one allocation per directory instead of one per name.
// The slab is never modified afterwards, which is what makes the strings
// safe.
func readNames(fd int, sc *scratch) ([]string, error) {
	var slab []byte
	var offs []int // start of each name in slab
	for {
		n, err := unix.Getdents(fd, sc.dents)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		buf := sc.dents[:n]
		for len(buf) >= 19 {
			ino := binary.NativeEndian.Uint64(buf[0:])
			reclen := int(binary.NativeEndian.Uint16(buf[16:]))
			if reclen < 19 || reclen > len(buf) {
				return nil, errors.New("malformed directory entry from the kernel")
			}
			name := buf[19:reclen]
			if i := slices.Index(name, 0); i >= 0 {
				name = name[:i]
			}
			buf = buf[reclen:]
			if ino == 0 || string(name) == "." || string(name) == ".." {
				continue // ino 0: a deleted entry some file systems report
			}
			offs = append(offs, len(slab))
			slab = append(slab, name...)
			slab = append(slab, 0)
		}
	}
	names := make([]string, len(offs))
	for i, off := range offs {
		end := off
		for slab[end] != 0 {
			end++
		}
		names[i] = unsafe.String(&slab[off], end-off)
	}
	slices.Sort(names)
	return names, nil
}

// cName returns a name returned by readNames as a C string: the slab
// holds a NUL right after it.
func cName(name string) *byte {
	return unsafe.StringData(name)
}

// scratch holds one worker's reusable buffers.
type scratch struct {
	path  []byte // host path of the current entry, NUL-terminated
	xlist []byte
	xval  []byte
	link  []byte
	dents []byte
}

func newScratch() *scratch {
	return &scratch{
		path:  make([]byte, 0, 512),
		xlist: make([]byte, 1024),
		xval:  make([]byte, 1024),
		link:  make([]byte, 256),
		dents: make([]byte, 64<<10),
	}
}

// cpath fills sc.path with dir + "/" + name and a NUL, and returns a
// pointer to it and the path as a new string.
func (sc *scratch) cpath(dir, name string) (*byte, string) {
	b := sc.path[:0]
	b = append(b, dir...)
	if len(dir) == 0 || dir[len(dir)-1] != '/' {
		b = append(b, '/')
	}
	b = append(b, name...)
	host := string(b)
	b = append(b, 0)
	sc.path = b
	return &b[0], host
}

// cstr returns s as a new NUL-terminated byte slice, for the rare calls
// with a path the walk has not prepared.
func cstr(s string) *byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return &b[0]
}
