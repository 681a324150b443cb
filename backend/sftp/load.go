package sftp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cairn-backup/cairn/backend"
)

const (
	// bufferedRead is the largest range Load reads into memory in one
	// go (one pipelined ReadAt) before calling fn; restic reads blobs and
	// pack headers this way. Larger ranges and whole files are streamed.
	bufferedRead = 4 << 20
	// readAhead is the buffer of a streamed read: each refill is one
	// pipelined read of this size, however small fn's reads are.
	readAhead = 1 << 20
)

// Load calls fn with a reader of length bytes of h starting at offset (the
// rest of the file when length is 0). A range past the end of the file is
// an error wrapping backend.ErrShortRead, found before fn is called. If the
// connection drops, fn may be called again on a new connection.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	name, err := b.filename(h)
	if err != nil {
		return fmt.Errorf("sftp: load %v in %s: %w", h, b.Location(), err)
	}
	if length < 0 || offset < 0 {
		return fmt.Errorf("sftp: load %s: invalid range: length %d at offset %d", name, length, offset)
	}
	err = b.pool.do(ctx, func(c *conn, _ bool) error {
		return b.loadOn(c, name, length, offset, fn)
	})
	if err != nil {
		return fmt.Errorf("sftp: load %s on %s: %w", name, b.host(), err)
	}
	return nil
}

func (b *Backend) loadOn(c *conn, name string, length int, offset int64, fn func(rd io.Reader) error) error {
	f, err := c.sftp.Open(name)
	if err != nil {
		return err
	}
	// The file is only read, so a close error cannot lose data.
	defer func() { _ = f.Close() }()

	if length > 0 && length <= bufferedRead {
		buf := make([]byte, length)
		n, err := f.ReadAt(buf, offset)
		if n < length {
			if err == nil || errors.Is(err, io.EOF) {
				return shortRead(name, length, offset, int64(n))
			}
			return fmt.Errorf("read %d bytes at offset %d: %w", length, offset, err)
		}
		return fn(bytes.NewReader(buf))
	}

	if length > 0 || offset > 0 {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("stat: %w", err)
		}
		if size := fi.Size(); offset > size || int64(length) > size-offset {
			return shortRead(name, length, offset, size-offset)
		}
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Errorf("seek to %d: %w", offset, err)
	}
	br := bufio.NewReaderSize(f, readAhead)
	if length == 0 {
		// bufio.Reader passes io.Copy on to File.WriteTo, which keeps many
		// requests in flight until the end of the file.
		return fn(br)
	}
	er := &exactReader{r: br, name: name, remaining: int64(length)}
	err = fn(er)
	if er.short != nil && !errors.Is(err, backend.ErrShortRead) {
		// The file shrank under us; fn may have swallowed the error.
		return errors.Join(er.short, err)
	}
	return err
}

func shortRead(name string, length int, offset, avail int64) error {
	if avail < 0 {
		avail = 0
	}
	what := fmt.Sprintf("%d bytes", length)
	if length == 0 {
		what = "the rest"
	}
	return fmt.Errorf("read %s of %s at offset %d: only %d bytes there: %w", what, name, offset, avail, backend.ErrShortRead)
}

// exactReader yields exactly remaining bytes, or fails with ErrShortRead
// if the file ends first.
type exactReader struct {
	r         io.Reader
	name      string
	remaining int64
	short     error
}

func (r *exactReader) Read(p []byte) (int, error) {
	if r.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.r.Read(p)
	r.remaining -= int64(n)
	if errors.Is(err, io.EOF) && r.remaining > 0 {
		r.short = fmt.Errorf("read %s: file ended %d bytes early: %w", r.name, r.remaining, backend.ErrShortRead)
		return n, r.short
	}
	if err == nil && r.remaining == 0 {
		err = io.EOF
	}
	return n, err
}
