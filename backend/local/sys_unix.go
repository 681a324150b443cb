//go:build !windows

package local

import (
	"errors"
	"io/fs"
	"os"
	"runtime"
	"syscall"
)

// isSyncUnsupported reports whether err from fsync means the filesystem
// cannot sync (some FUSE and network filesystems; macOS exFAT says ENOTTY),
// which restic tolerates as well.
func isSyncUnsupported(err error) bool {
	return err != nil && (errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EINVAL) ||
		runtime.GOOS == "darwin" && errors.Is(err, syscall.ENOTTY))
}

// syncDir commits a rename in dir to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	// Some filesystems cannot sync directories; restic ignores these too.
	if isSyncUnsupported(err) || errors.Is(err, syscall.ENOENT) {
		err = nil
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// setReadOnly sets f's mode to mode without write permission. Filesystems
// that cannot store modes (exFAT, some CIFS mounts) are tolerated, like in
// restic: the file is still complete, just not protected.
func setReadOnly(f *os.File, mode fs.FileMode) error {
	err := f.Chmod(mode &^ 0o222)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}

// removeFile deletes name; on Unix the file's own mode does not matter.
func removeFile(name string) error { return os.Remove(name) }
