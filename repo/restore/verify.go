package restore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo/blob"
)

// ErrVerify is wrapped by the failure of a file whose restored content
// does not match the snapshot.
var ErrVerify = errors.New("verification failed")

// verify reads back every file whose content this restore wrote and checks
// its size and the hash of each blob, like restic's --verify. Files left as
// they were, and extra hard links, are not read.
func (rs *restorer) verify(ctx context.Context) error {
	var todo []*fileEntry
	for _, f := range rs.files {
		if f.written {
			todo = append(todo, f)
		}
	}
	return forEach(ctx, rs.workers, len(todo), func() *[]byte { return new([]byte) },
		func(ctx context.Context, buf *[]byte, i int) error {
			f := todo[i]
			err := rs.verifyFile(ctx, f, buf)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				rs.fail(f.loc(), fmt.Errorf("%w: %w", ErrVerify, err))
				return nil
			}
			rs.verified.Add(1)
			return nil
		})
}

func (rs *restorer) verifyFile(ctx context.Context, f *fileEntry, buf *[]byte) error {
	p := f.path()
	fh, err := openRead(p)
	if err != nil {
		return err
	}
	defer func() { _ = fh.Close() }()
	var st unix.Stat_t
	if err := unix.Fstat(int(fh.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", p)
	}
	if uint64(st.Size) != f.size {
		return fmt.Errorf("%s has %d bytes, want %d", p, st.Size, f.size)
	}
	idx := rs.r.Index()
	var off int64
	for _, id := range f.content {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, ok := idx.PlaintextLength(blob.Handle{ID: id, Type: blob.DataBlob})
		if !ok || n > maxBlobSize {
			return fmt.Errorf("blob %s: length unknown", id.Str())
		}
		if cap(*buf) < int(n) {
			*buf = make([]byte, n)
		}
		b := (*buf)[:n]
		if _, err := fh.ReadAt(b, off); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%s ends before blob %s at offset %d", p, id.Str(), off)
			}
			return err
		}
		if blob.Hash(b) != id {
			return fmt.Errorf("unexpected content in %s at offset %d (blob %s)", p, off, id.Str())
		}
		off += int64(n)
	}
	return nil
}
