package local

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/cairn-backup/cairn/backend"
)

// Load calls fn with a reader of length bytes of h starting at offset (the
// rest of the file when length is 0). A range past the end of the file is an
// error wrapping backend.ErrShortRead, and so is a file that shrinks while fn
// reads it: a short read is never silent.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	name, err := b.filename(h)
	if err != nil {
		return fmt.Errorf("local: load %v in %s: %w", h, b.path, err)
	}
	if length < 0 || offset < 0 {
		return fmt.Errorf("local: load %s: invalid range: length %d at offset %d", name, length, offset)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: load %s: %w", name, err)
	}
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("local: %w", err)
	}
	// The file is only read, so a close error cannot lose data.
	defer func() { _ = f.Close() }()

	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("local: %w", err)
	}
	size := fi.Size()
	if offset > size || int64(length) > size-offset {
		return fmt.Errorf("local: load %s: %d bytes at offset %d of a %d-byte file: %w",
			name, length, offset, size, backend.ErrShortRead)
	}
	n := int64(length)
	if length == 0 {
		n = size - offset
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Errorf("local: %w", err)
	}
	return fn(&exactReader{f: f, name: name, remaining: n})
}

// exactReader yields exactly remaining bytes of f from its current offset,
// or fails with ErrShortRead if the file ends first.
type exactReader struct {
	f         *os.File
	name      string
	remaining int64
}

func (r *exactReader) Read(p []byte) (int, error) {
	if r.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.f.Read(p)
	r.remaining -= int64(n)
	if err == io.EOF {
		err = r.shrunk()
	}
	return n, err
}

// WriteTo lets io.Copy into an *os.File (a restore, a cache) use
// copy_file_range: the limited reader over the file is what os.File's
// ReadFrom recognises.
func (r *exactReader) WriteTo(w io.Writer) (int64, error) {
	lr := &io.LimitedReader{R: r.f, N: r.remaining}
	n, err := io.Copy(w, lr)
	r.remaining = lr.N
	if err == nil && r.remaining > 0 {
		err = r.shrunk()
	}
	return n, err
}

func (r *exactReader) shrunk() error {
	if r.remaining <= 0 {
		return io.EOF
	}
	return fmt.Errorf("local: read %s: file ended %d bytes early: %w", r.name, r.remaining, backend.ErrShortRead)
}
