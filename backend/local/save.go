package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cairn-backup/cairn/backend"
)

// copyBufferSize is the piece size for streams that are neither files nor
// in memory; between pieces Save checks for cancellation.
const copyBufferSize = 1 << 20

// Save writes rd to h atomically (see the package documentation). An
// existing file is replaced. On error nothing new is visible under h, with
// one exception shared with restic: if syncing the directory fails after
// the rename, the complete file is in place but the error is returned,
// because the rename may not survive a crash.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	final, err := b.filename(h)
	if err != nil {
		return fmt.Errorf("local: save %v in %s: %w", h, b.path, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: save %s: %w", final, err)
	}
	if err := b.save(ctx, final, rd); err != nil {
		return fmt.Errorf("local: save %s: %w", final, err)
	}
	return nil
}

func (b *Backend) save(ctx context.Context, final string, rd backend.RewindReader) (err error) {
	dir := filepath.Dir(final)
	f, err := b.createTemp(dir, filepath.Base(final)+"-tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if err != nil && !renamed {
			// Close may run twice; the second returns an error we ignore.
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()

	want := rd.Length()
	if want < 0 {
		return fmt.Errorf("invalid length %d", want)
	}
	// Preallocation avoids fragmenting large packs and finds a full disk
	// before any data is written. Filesystems without it are fine.
	if !b.noPreallocate {
		if err := preallocate(f, want); err != nil && isNoSpace(err) {
			return fmt.Errorf("preallocate %d bytes for %s: %w", want, tmp, err)
		}
	}
	n, err := copyData(ctx, f, rd)
	if err != nil {
		return withPath("write", tmp, err)
	}
	if n != want {
		return fmt.Errorf("write %s: reader yielded %d bytes, want %d", tmp, n, want)
	}
	// A cancellation that arrived during the copy must not let the file appear.
	if err := ctx.Err(); err != nil {
		return err
	}
	// Read-only before the rename, so the file never appears writable.
	if err := setReadOnly(f, b.fileMode); err != nil {
		return withPath("chmod", tmp, err)
	}
	syncErr := f.Sync()
	syncUnsupported := isSyncUnsupported(syncErr)
	if syncErr != nil && !syncUnsupported {
		return withPath("sync", tmp, syncErr)
	}
	// Close before the rename: Windows cannot rename open files.
	if err := f.Close(); err != nil {
		return withPath("close", tmp, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	// From here on tmp is gone; removing it on error could only hit a
	// temporary file of another writer that happened to get the same name.
	renamed = true
	// A filesystem that cannot sync files cannot sync directories either.
	if syncUnsupported {
		return nil
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// createTemp creates the temporary file in dir, making dir first if it is
// missing (a data/XX directory removed by hand, or a layout made by a tool
// that creates directories lazily).
func (b *Backend) createTemp(dir, prefix string) (*os.File, error) {
	f, err := os.CreateTemp(dir, prefix)
	if !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	if err := os.MkdirAll(dir, b.dirMode); err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	return os.CreateTemp(dir, prefix)
}

// copyData copies rd into f. A *backend.FileReader is copied from its file
// with io.Copy on the *os.File, so Linux can use copy_file_range and the
// bytes need not pass through user space; data in memory is written in one
// call; other streams are copied in pieces with a cancellation check each.
func copyData(ctx context.Context, f *os.File, rd backend.RewindReader) (int64, error) {
	if fr, ok := rd.(*backend.FileReader); ok {
		src := fr.File()
		// The FileReader reads from byte 0 whatever the file's offset is;
		// the kernel copy uses the offset, so set it. A file that cannot
		// seek takes the generic path, which reports its read error.
		if _, err := src.Seek(0, io.SeekStart); err == nil {
			return io.Copy(f, io.LimitReader(src, fr.Length()))
		}
	}
	if wt, ok := rd.(io.WriterTo); ok {
		return wt.WriteTo(f)
	}
	return io.CopyBuffer(writerOnly{f}, &ctxReader{ctx: ctx, r: rd}, make([]byte, copyBufferSize))
}

// writerOnly hides os.File's ReadFrom so io.CopyBuffer uses its buffer.
type writerOnly struct{ io.Writer }

// ctxReader fails once ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// isNoSpace reports whether err means the data cannot fit: disk full, quota
// exceeded or file size limit.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EFBIG) || errors.Is(err, syscall.EDQUOT)
}

// withPath names path in err unless err is an *fs.PathError that already
// does, to keep messages free of repetitions.
func withPath(op, path string, err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok && pe.Path == path {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}
