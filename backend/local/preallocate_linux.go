package local

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// preallocate reserves size bytes for f with fallocate(2), which also sets
// the file size; Save checks the byte count it wrote, so a short reader
// cannot leave zeros in a stored file.
func preallocate(f *os.File, size int64) error {
	if size <= 0 {
		return nil
	}
	// SyscallConn instead of Fd: Fd would switch the file to blocking mode.
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Fallocate(int(fd), 0, 0, size)
			if !errors.Is(ferr, unix.EINTR) {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return ferr
}
