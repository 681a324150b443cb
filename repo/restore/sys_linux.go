package restore

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// oNoatime keeps reads (verification, comparing existing files) from
// moving the access times the restore has just set. The kernel allows it
// only to the file's owner and to root; openRead retries without it.
const oNoatime = unix.O_NOATIME

// futimens sets the access and modification times of an open file to the
// nanosecond: utimensat(2) with a NULL path, as the C library's futimens
// does (x/sys/unix offers only the microsecond futimes).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// preallocate reserves size bytes for a file that is written out of order,
// which keeps it from fragmenting. Failure (a file system without
// fallocate) is harmless: the writes allocate as they go.
func preallocate(fd int, size int64) {
	_ = unix.Fallocate(fd, 0, 0, size)
}

// unixTime converts a stat time.
func unixTime(ts unix.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }

// statMtime returns the modification time of st.
func statMtime(st *unix.Stat_t) time.Time { return unixTime(st.Mtim) }

// mknod makes a device node; dev is the raw st_rdev restic stores.
func mknod(p string, mode uint32, dev uint64) error { return unix.Mknod(p, mode, int(dev)) }
