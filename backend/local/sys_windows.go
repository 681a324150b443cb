package local

import (
	"errors"
	"io/fs"
	"os"
)

// isSyncUnsupported reports false: FlushFileBuffers works on every local
// Windows filesystem.
func isSyncUnsupported(error) bool { return false }

// syncDir does nothing: Windows cannot flush a directory.
func syncDir(string) error { return nil }

// setReadOnly does nothing: a read-only file on Windows could not be
// replaced or deleted, and restic leaves files writable there too.
func setReadOnly(*os.File, fs.FileMode) error { return nil }

// removeFile clears a read-only flag set by another tool, which Windows
// would otherwise refuse to delete.
func removeFile(name string) error {
	if err := os.Chmod(name, 0o666); err != nil && !errors.Is(err, fs.ErrPermission) && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Remove(name)
}
