package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/cairn-backup/cairn/backend"
)

// Backend retries the operations of the backend it wraps. It offers
// backend.Creator and backend.Replacer where the wrapped backend does.
type Backend struct {
	inner backend.Backend
	r     retrier
}

var (
	_ backend.Backend  = (*Backend)(nil)
	_ backend.Creator  = (*Backend)(nil)
	_ backend.Replacer = (*Backend)(nil)
)

// New wraps be. The zero Options mean restic's retry policy without
// reports.
func New(be backend.Backend, opts Options) *Backend {
	return &Backend{inner: be, r: retrier{opts: opts.withDefaults()}}
}

// Unwrap returns the wrapped backend.
func (b *Backend) Unwrap() backend.Backend { return b.inner }

// Location returns the wrapped backend's location.
func (b *Backend) Location() string { return b.inner.Location() }

// Connections returns the wrapped backend's value.
func (b *Backend) Connections() uint { return b.inner.Connections() }

// Close closes the wrapped backend.
func (b *Backend) Close() error { return b.inner.Close() }

// HasAtomicReplace reports the wrapped backend's capability.
func (b *Backend) HasAtomicReplace() bool {
	r, ok := b.inner.(backend.Replacer)
	return ok && r.HasAtomicReplace()
}

// Create prepares the location, with retries, if the wrapped backend knows
// how.
func (b *Backend) Create(ctx context.Context) error {
	c, ok := b.inner.(backend.Creator)
	if !ok {
		return nil
	}
	return b.r.do(ctx, func() string { return "Create()" }, func() (error, bool) {
		return c.Create(ctx), false
	})
}

// invalid reports a handle no attempt can fix, before any attempt.
func invalid(op string, h backend.Handle) error {
	if err := h.Valid(); err != nil {
		return backend.PermanentError(fmt.Errorf("%s %v: %w", op, h, err))
	}
	return nil
}

// Save stores rd under h, rewinding it for every attempt.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if err := invalid("save", h); err != nil {
		return err
	}
	atomic := b.HasAtomicReplace()
	tries := 0
	return b.r.do(ctx, func() string { return fmt.Sprintf("Save(%v)", h) }, func() (error, bool) {
		tries++
		if err := rd.Rewind(); err != nil {
			return fmt.Errorf("save %v: rewind the data: %w", h, err), true
		}
		err := b.inner.Save(ctx, h, rd)
		if err != nil && tries > 1 && !atomic && backend.IsPermanent(err) && b.storedEarlier(ctx, h, rd.Length()) {
			// An earlier attempt stored the file and only its answer was
			// lost; a server that neither overwrites nor deletes
			// (rest-server --append-only) now refuses the retry. Every name
			// but the config's is the SHA-256 of the content, so the
			// stored file is this one.
			return nil, false
		}
		if err == nil || atomic || backend.IsPermanent(err) || ctx.Err() != nil {
			return err, false
		}
		// The error may have been lost on its way back after the file was
		// stored (restic removes it for the same reason): a backend that
		// refuses to overwrite would then refuse every retry. A removal
		// that fails leaves that to the next attempt's error.
		_ = b.inner.Remove(ctx, h)
		return err, false
	})
}

// storedEarlier reports whether h, a content-addressed file, exists with
// the expected size.
func (b *Backend) storedEarlier(ctx context.Context, h backend.Handle, size int64) bool {
	if h.Type == backend.ConfigFile {
		return false
	}
	fi, err := b.inner.Stat(ctx, h)
	return err == nil && fi.Size == size
}

// Load calls fn with the requested range, again from the start of the
// range after a transient failure.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	if err := invalid("load", h); err != nil {
		return err
	}
	if length < 0 || offset < 0 {
		return backend.PermanentError(fmt.Errorf("load %v: invalid range offset %d length %d", h, offset, length))
	}
	op := func() string { return fmt.Sprintf("Load(%v, %d, %d)", h, length, offset) }
	return b.r.do(ctx, op, func() (error, bool) {
		var consumerErr error
		var tr *trackingReader
		err := b.inner.Load(ctx, h, length, offset, func(rd io.Reader) error {
			tr = &trackingReader{r: rd}
			consumerErr = fn(tr)
			return consumerErr
		})
		// A consumer that failed without a failed read judged the data
		// itself; the same bytes would come again.
		final := err != nil && consumerErr != nil && errors.Is(err, consumerErr) && tr != nil && tr.err == nil
		return err, final
	})
}

// trackingReader remembers the first read error other than io.EOF, to tell
// a broken transfer from a consumer's own error.
type trackingReader struct {
	r   io.Reader
	err error
}

func (t *trackingReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// Stat returns the size of h. A missing file is reported at once, since
// Stat is how callers test for existence.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := invalid("stat", h); err != nil {
		return backend.FileInfo{}, err
	}
	var fi backend.FileInfo
	err := b.r.do(ctx, func() string { return fmt.Sprintf("Stat(%v)", h) }, func() (error, bool) {
		var err error
		fi, err = b.inner.Stat(ctx, h)
		return err, errors.Is(err, fs.ErrNotExist)
	})
	return fi, err
}

// Remove deletes h. When an earlier attempt removed the file but its answer
// was lost, the retry reports the file missing, which callers ignore.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if err := invalid("remove", h); err != nil {
		return err
	}
	return b.r.do(ctx, func() string { return fmt.Sprintf("Remove(%v)", h) }, func() (error, bool) {
		return b.inner.Remove(ctx, h), false
	})
}

// List calls fn once per file of type t. A listing that breaks off is
// started again, and files fn has seen already are skipped. An error from
// fn ends the listing at once and is returned as it is.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	seen := make(map[string]struct{})
	var fnErr error
	err := b.r.do(ctx, func() string { return fmt.Sprintf("List(%v)", t) }, func() (error, bool) {
		err := b.inner.List(ctx, t, func(fi backend.FileInfo) error {
			if _, ok := seen[fi.Name]; ok {
				return nil
			}
			seen[fi.Name] = struct{}{}
			fnErr = fn(fi)
			return fnErr
		})
		return err, fnErr != nil
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}
