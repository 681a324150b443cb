package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo/blob"
)

// fileState is what an existing file holds compared with the snapshot.
type fileState struct {
	// matches[i] reports whether blob i is already in place; nil means all
	// are (trusted from size and modification time).
	matches     []bool
	sizeMatches bool
}

func (s *fileState) needsRestore() bool {
	if s == nil || !s.sizeMatches {
		return true
	}
	for _, m := range s.matches {
		if !m {
			return true
		}
	}
	return false
}

func (s *fileState) matched(i int) bool {
	return s != nil && s.matches != nil && i < len(s.matches) && s.matches[i]
}

// checkExisting decides, for every file in a directory that existed before
// the restore, what to do with what is already there: restic's overwrite
// rules, then a comparison of the existing content blob by blob. Files in
// fresh directories need none of this. It runs in dry runs too.
func (rs *restorer) checkExisting(ctx context.Context) error {
	var todo []*fileEntry
	for _, f := range rs.files {
		if !f.dir.fresh && !f.dir.failed {
			todo = append(todo, f)
		}
	}
	return forEach(ctx, rs.workers, len(todo), func() *[]byte { return new([]byte) },
		func(ctx context.Context, buf *[]byte, i int) error {
			return rs.checkFile(ctx, todo[i], buf)
		})
}

func (rs *restorer) checkFile(ctx context.Context, f *fileEntry, buf *[]byte) error {
	fi, err := os.Lstat(f.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		f.addErr(fmt.Errorf("check existing file: %w", err))
		return nil
	}
	f.existed = true
	switch rs.opts.Overwrite {
	case OverwriteNever:
		f.skip = true
		return nil
	case OverwriteIfNewer:
		if !f.modTime().After(fi.ModTime()) {
			f.skip = true
			return nil
		}
	}
	if !fi.Mode().IsRegular() {
		return nil // replaced as a whole
	}
	state, err := rs.compareFile(ctx, f, buf, rs.opts.Overwrite == OverwriteIfChanged)
	if err != nil {
		return err
	}
	f.existing = state
	f.metaOnly = state != nil && !state.needsRestore()
	return nil
}

// openRead opens a file for reading without following a symlink, without
// blocking on a FIFO put there meanwhile, and without moving its access
// time where the kernel allows.
func openRead(p string) (*os.File, error) {
	const flags = os.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	f, err := os.OpenFile(p, flags|oNoatime, 0)
	if err != nil && oNoatime != 0 && errors.Is(err, unix.EPERM) {
		f, err = os.OpenFile(p, flags, 0)
	}
	return f, err
}

// compareFile reads an existing regular file and reports which of the
// node's blobs it already holds, like restic: with trustMtime a file whose
// size and modification time match counts as correct unread. A file that
// cannot be read, is not a regular file, holds a blob the index does not
// know, or needs changes but has other hard links gets nil: it is restored
// from scratch. Only a cancelled ctx is an error.
func (rs *restorer) compareFile(ctx context.Context, f *fileEntry, buf *[]byte, trustMtime bool) (*fileState, error) {
	fh, err := openRead(f.path())
	if err != nil {
		return nil, nil
	}
	defer func() { _ = fh.Close() }()
	var st unix.Stat_t
	if err := unix.Fstat(int(fh.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil
	}
	s := &fileState{sizeMatches: uint64(st.Size) == f.size}
	mtime := statMtime(&st)
	if trustMtime && s.sizeMatches && mtime.Equal(f.modTime()) {
		return s, nil
	}
	idx := rs.r.Index()
	s.matches = make([]bool, len(f.content))
	var off int64
	for i, id := range f.content {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, ok := idx.PlaintextLength(blob.Handle{ID: id, Type: blob.DataBlob})
		if !ok || n > maxBlobSize {
			return nil, nil
		}
		if cap(*buf) < int(n) {
			*buf = make([]byte, n)
		}
		b := (*buf)[:n]
		if _, err := fh.ReadAt(b, off); err != nil {
			if errors.Is(err, io.EOF) {
				s.sizeMatches = false
				break
			}
			return nil, nil
		}
		s.matches[i] = blob.Hash(b) == id
		off += int64(n)
	}
	if st.Nlink > 1 && s.needsRestore() {
		// Writing into it would change the other names too (restic does,
		// and then even leaves the blobs it found right as zeros in the
		// new file it makes): start over.
		return nil, nil
	}
	return s, nil
}

// createFile makes the file the first blob write (or the only step, for a
// file without blobs to write) goes to, and returns a descriptor open for
// writing. In a fresh directory the file is created exclusively: a second
// node of the same name cannot overwrite the first. Elsewhere, an existing
// file that is partly right is kept; anything else is replaced. New files
// are made 0600 and get their mode with the rest of their metadata.
func (rs *restorer) createFile(f *fileEntry) (int, error) {
	p := f.path()
	size := int64(f.size)
	if f.existing != nil {
		fd, err := openWrite(p)
		if err != nil {
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			_ = unix.Close(fd)
			return -1, fmt.Errorf("stat %s: %w", p, err)
		}
		if st.Size > size {
			if err := unix.Ftruncate(fd, size); err != nil {
				_ = unix.Close(fd)
				return -1, fmt.Errorf("truncate %s: %w", p, err)
			}
		} else if size > 0 {
			preallocate(fd, size)
		}
		return fd, nil
	}
	var fd int
	var err error
	if f.dir.fresh && !f.existed {
		fd, err = createExcl(p)
	} else {
		fd, err = rs.replaceFile(f, p)
	}
	if err != nil {
		return -1, err
	}
	switch {
	case size == 0:
	case f.sparse || f.blobSize != size:
		// Holes where nothing is written; and a size that disagrees with
		// the content is kept as the tree says, like restic.
		err = unix.Ftruncate(fd, size)
	case f.dests > 1:
		preallocate(fd, size)
	}
	if err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("truncate %s: %w", p, err)
	}
	return fd, nil
}

func createExcl(p string) (int, error) {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return -1, &fs.PathError{Op: "create", Path: p, Err: err}
	}
	return fd, nil
}

// openWrite opens an existing file for writing; one the restore may not
// write is made writable first (its mode is restored at the end).
func openWrite(p string) (int, error) {
	return openWriteFlags(p, 0)
}

func openWriteFlags(p string, extra int) (int, error) {
	flags := unix.O_WRONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | extra
	fd, err := unix.Open(p, flags, 0)
	if errors.Is(err, unix.EACCES) {
		if cerr := unix.Chmod(p, 0o600); cerr == nil {
			fd, err = unix.Open(p, flags, 0)
		}
	}
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return fd, nil
}

// replaceFile prepares path in a directory that existed before: a regular
// file with one link is truncated and reused; anything else (symlink,
// directory, device, a file with other hard links) is removed first.
// restic removes a non-empty directory only with --delete.
func (rs *restorer) replaceFile(f *fileEntry, p string) (int, error) {
	var st unix.Stat_t
	err := unix.Lstat(p, &st)
	switch {
	case errors.Is(err, unix.ENOENT):
		return createExcl(p)
	case err != nil:
		return -1, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	f.existed = true
	if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink <= 1 {
		return openWriteFlags(p, unix.O_TRUNC)
	}
	if rs.opts.Delete {
		err = os.RemoveAll(p)
	} else {
		err = os.Remove(p)
	}
	if err != nil {
		return -1, fmt.Errorf("remove what is in the way: %w", err)
	}
	return createExcl(p)
}

// writeAt writes p at off. For a sparse file, leading and trailing zeros
// are not written: the file was truncated to its size, so they read back
// as zeros and stay holes.
func writeAt(fd int, p []byte, off int64, sparse bool) error {
	if sparse {
		lead := zeroPrefix(p)
		if lead == len(p) {
			return nil
		}
		p = p[lead : len(p)-zeroSuffix(p[lead:])]
		off += int64(lead)
	}
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p = p[n:]
		off += int64(n)
	}
	return nil
}

var zeros [4096]byte

func zeroPrefix(p []byte) int {
	n := 0
	for len(p)-n >= len(zeros) && bytes.Equal(p[n:n+len(zeros)], zeros[:]) {
		n += len(zeros)
	}
	for n < len(p) && p[n] == 0 {
		n++
	}
	return n
}

func zeroSuffix(p []byte) int {
	n := len(p)
	for n >= len(zeros) && bytes.Equal(p[n-len(zeros):n], zeros[:]) {
		n -= len(zeros)
	}
	for n > 0 && p[n-1] == 0 {
		n--
	}
	return len(p) - n
}

// finishFile completes a file after its last blob write: with every blob
// in place, its metadata is applied through fd (when there is one);
// otherwise the file is reported with what went wrong and keeps the time of
// the restore as its mtime. The caller closes fd afterwards.
func (rs *restorer) finishFile(f *fileEntry, fd int) {
	defer rs.opts.Progress.fileDone()
	if len(f.errs) > 0 {
		rs.fail(f.loc(), errors.Join(f.errs...))
		return
	}
	if fd < 0 {
		rs.fail(f.loc(), errors.New("file was not created"))
		return
	}
	if err := rs.applyMetadata(f.loc(), metaTarget{fd: fd, path: f.path()}, &f.meta, f.existed, f.dir.setgid); err != nil {
		rs.fail(f.loc(), err)
		return
	}
	f.written = true
	rs.filesRestored.Add(1)
	rs.bytesRestored.Add(int64(f.size))
}
