//go:build darwin

package restore

import (
	"golang.org/x/sys/unix"
	"time"
)

// oNoatime is Linux-only.
const oNoatime = 0

// futimens sets the times of an open file, to the microsecond where the
// system offers no nanosecond call on descriptors.
func futimens(fd int, ts *[2]unix.Timespec) error {
	tv := []unix.Timeval{unix.NsecToTimeval(unix.TimespecToNsec(ts[0])), unix.NsecToTimeval(unix.TimespecToNsec(ts[1]))}
	return unix.Futimes(fd, tv)
}

// preallocate is a no-op where fallocate does not exist.
func preallocate(fd int, size int64) {}

// unixTime converts a stat time.
func unixTime(ts unix.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }

// statMtime returns the modification time of st.
func statMtime(st *unix.Stat_t) time.Time { return unixTime(st.Mtim) }

// mknod makes a device node; dev is the raw st_rdev restic stores.
func mknod(p string, mode uint32, dev uint64) error { return unix.Mknod(p, mode, int(dev)) }
