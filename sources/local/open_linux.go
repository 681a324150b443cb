package local

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/sources"
)

// opener returns Entry.Open for the regular file at host, identified by
// inode and device when it was listed.
func (s *Source) opener(host string, ino, dev uint64, uid uint32) func(context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		if s.closed.Load() {
			return nil, errClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return openFile(host, ino, dev, uid)
	}
}

// openFile opens a regular file for reading, making sure it is still the
// file the walk listed: same inode on the same device. (A file deleted and
// recreated that happens to get the old inode number back passes; nothing
// short of file-system-specific generation numbers tells them apart.) It opens with O_NOFOLLOW, so a symlink put in the
// file's place is refused, and with O_NONBLOCK, so a FIFO put there does
// not hang the backup (regular files ignore the flag). Like restic it
// avoids updating the access time where the kernel allows.
func openFile(host string, ino, dev uint64, uid uint32) (io.ReadCloser, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
	if mayNoatime(uid) {
		flags |= unix.O_NOATIME
	}
	var fd int
	for {
		var err error
		fd, err = unix.Open(host, flags, 0)
		switch {
		case err == nil:
		case err == unix.EINTR:
			continue
		case err == unix.EPERM && flags&unix.O_NOATIME != 0:
			flags &^= unix.O_NOATIME
			continue
		case err == unix.ENOENT || err == unix.ENOTDIR:
			return nil, vanishedError("open", host, err)
		case err == unix.ELOOP:
			return nil, fmt.Errorf("%w: %s was replaced by a symlink", sources.ErrVanished, host)
		default:
			return nil, &fs.PathError{Op: "open", Path: host, Err: err}
		}
		break
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		closeFD(fd)
		return nil, &fs.PathError{Op: "fstat", Path: host, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		closeFD(fd)
		return nil, fmt.Errorf("%w: %s is no longer a regular file", sources.ErrVanished, host)
	}
	if st.Ino != ino || uint64(st.Dev) != dev {
		closeFD(fd)
		return nil, fmt.Errorf("%w: %s was replaced by another file since it was listed", sources.ErrVanished, host)
	}
	return &file{fd: fd, name: host}, nil
}

// file reads a file through its descriptor. It is simpler and cheaper than
// an os.File here: no poller registration, no extra fcntl per file.
type file struct {
	fd     int
	name   string
	closed atomic.Bool
}

var (
	_ io.ReadCloser = (*file)(nil)
	_ io.ReaderAt   = (*file)(nil)
)

// Read reads from the current offset.
func (f *file) Read(p []byte) (int, error) {
	if f.closed.Load() {
		return 0, fs.ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(f.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, &fs.PathError{Op: "read", Path: f.name, Err: err}
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// ReadAt reads at an offset, for readers that fetch parts of a large file
// concurrently.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if f.closed.Load() {
		return 0, fs.ErrClosed
	}
	done := 0
	for done < len(p) {
		n, err := unix.Pread(f.fd, p[done:], off+int64(done))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return done, &fs.PathError{Op: "read", Path: f.name, Err: err}
		case n == 0:
			return done, io.EOF
		}
		done += n
	}
	return done, nil
}

// Close releases the descriptor; closing twice is harmless.
func (f *file) Close() error {
	if !f.closed.CompareAndSwap(false, true) {
		return nil
	}
	if err := unix.Close(f.fd); err != nil {
		return &fs.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}
