package backendtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"

	"github.com/cairn-backup/cairn/backend"
)

// Location returns the wrapped backend's location with a "faulty:" prefix.
func (f *Faulty) Location() string { return "faulty:" + f.inner.Location() }

// Connections returns the wrapped backend's value.
func (f *Faulty) Connections() uint { return f.inner.Connections() }

// HasAtomicReplace reports the wrapped backend's capability.
func (f *Faulty) HasAtomicReplace() bool {
	r, ok := f.inner.(backend.Replacer)
	return ok && r.HasAtomicReplace()
}

// Create calls the wrapped backend's Create if it has one.
func (f *Faulty) Create(ctx context.Context) error {
	if c, ok := f.inner.(backend.Creator); ok {
		return c.Create(ctx)
	}
	return nil
}

// Close closes the wrapped backend.
func (f *Faulty) Close() error { return f.inner.Close() }

func notExist(op Op, h backend.Handle) error {
	return fmt.Errorf("faulty: %v %v: vanished: %w", op, h, fs.ErrNotExist)
}

// Save stores rd under h unless a fault strikes. A successful Save brings
// back a vanished file.
func (f *Faulty) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	fault := f.begin(OpSave, h)
	if fault != nil && fault.When == Before {
		return injected(fault, OpSave, h)
	}
	if fault != nil && fault.When == MidStream {
		rd = &brokenRewindReader{RewindReader: rd, failAt: rd.Length() / 2, err: injected(fault, OpSave, h)}
	}
	if err := f.inner.Save(ctx, h, rd); err != nil {
		return err
	}
	f.mu.Lock()
	delete(f.vanished, keyOf(h))
	f.mu.Unlock()
	if fault != nil && fault.When == After {
		return injected(fault, OpSave, h)
	}
	return nil
}

// Load reads from the wrapped backend through the data faults of h.
func (f *Faulty) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	fault := f.begin(OpLoad, h)
	vanished, truncSize, truncated, corrupt := f.dataFaults(h)
	if vanished {
		return notExist(OpLoad, h)
	}
	if fault != nil && fault.When == Before {
		return injected(fault, OpLoad, h)
	}
	midStream := fault != nil && fault.When == MidStream
	if length < 0 || offset < 0 {
		// Let the wrapped backend report its own error for a bad range.
		return f.inner.Load(ctx, h, length, offset, fn)
	}

	// n is the number of bytes fn will see; it is needed only to cut a file
	// short or to break the stream half way.
	n := int64(length)
	if truncated || midStream && length == 0 {
		fi, err := f.inner.Stat(ctx, h)
		if err != nil {
			return err
		}
		size := fi.Size
		if truncated {
			size = min(size, truncSize)
		}
		if offset > size || int64(length) > size-offset {
			return fmt.Errorf("faulty: load %v: %d bytes at offset %d of a file truncated to %d bytes: %w",
				h, length, offset, size, backend.ErrShortRead)
		}
		if length == 0 {
			n = size - offset
			if n == 0 {
				// Length 0 would ask the wrapped backend for the real rest.
				return fn(bytes.NewReader(nil))
			}
			length = int(n)
		}
	}

	wrapped := func(rd io.Reader) error {
		if len(corrupt) > 0 {
			rd = &corruptReader{r: rd, pos: offset, offsets: corrupt}
		}
		if midStream {
			rd = &brokenReader{r: rd, remaining: n / 2, err: injected(fault, OpLoad, h)}
		}
		return fn(rd)
	}
	if err := f.inner.Load(ctx, h, length, offset, wrapped); err != nil {
		return err
	}
	if fault != nil && fault.When == After {
		return injected(fault, OpLoad, h)
	}
	return nil
}

// Stat returns h's size as the data faults show it.
func (f *Faulty) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	fault := f.begin(OpStat, h)
	vanished, truncSize, truncated, _ := f.dataFaults(h)
	if vanished {
		return backend.FileInfo{}, notExist(OpStat, h)
	}
	if fault != nil && fault.When != After {
		return backend.FileInfo{}, injected(fault, OpStat, h)
	}
	fi, err := f.inner.Stat(ctx, h)
	if err != nil {
		return fi, err
	}
	if truncated {
		fi.Size = min(fi.Size, truncSize)
	}
	if fault != nil {
		return backend.FileInfo{}, injected(fault, OpStat, h)
	}
	return fi, nil
}

// Remove deletes h from the wrapped backend unless a fault strikes. A
// vanished file is reported missing and stays in the wrapped backend.
func (f *Faulty) Remove(ctx context.Context, h backend.Handle) error {
	fault := f.begin(OpRemove, h)
	vanished, _, _, _ := f.dataFaults(h)
	if vanished {
		return notExist(OpRemove, h)
	}
	if fault != nil && fault.When != After {
		return injected(fault, OpRemove, h)
	}
	if err := f.inner.Remove(ctx, h); err != nil {
		return err
	}
	if fault != nil {
		return injected(fault, OpRemove, h)
	}
	return nil
}

// List lists the wrapped backend, skipping vanished files and showing
// truncated sizes. Files marked with VanishAfterList vanish once this List
// has reported them and returned.
func (f *Faulty) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	h := backend.Handle{Type: t}
	fault := f.begin(OpList, h)
	if fault != nil && fault.When != After {
		return injected(fault, OpList, h)
	}
	var reported []fileKey
	defer func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, k := range reported {
			delete(f.vanishOnList, k)
			f.vanished[k] = true
		}
	}()
	err := f.inner.List(ctx, t, func(fi backend.FileInfo) error {
		k := fileKey{t: t, name: fi.Name}
		f.mu.Lock()
		vanished := f.vanished[k]
		truncSize, truncated := f.truncate[k]
		if f.vanishOnList[k] && !vanished {
			reported = append(reported, k)
		}
		f.mu.Unlock()
		if vanished {
			return nil
		}
		if truncated {
			fi.Size = min(fi.Size, truncSize)
		}
		return fn(fi)
	})
	if err != nil {
		return err
	}
	if fault != nil {
		return injected(fault, OpList, h)
	}
	return nil
}

// corruptReader flips the bytes at the given file offsets; pos is the file
// offset of the next byte read.
type corruptReader struct {
	r       io.Reader
	pos     int64
	offsets []int64
}

func (c *corruptReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for _, off := range c.offsets {
		if off >= c.pos && off < c.pos+int64(n) {
			p[off-c.pos] ^= 0xff
		}
	}
	c.pos += int64(n)
	return n, err
}

// brokenReader yields remaining bytes and then fails with err.
type brokenReader struct {
	r         io.Reader
	remaining int64
	err       error
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.remaining <= 0 {
		return 0, b.err
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.r.Read(p)
	b.remaining -= int64(n)
	if err == io.EOF {
		// The data ended before the break point; report the break anyway.
		err = b.err
	}
	return n, err
}

// brokenRewindReader is a RewindReader that fails after failAt bytes on
// every pass.
type brokenRewindReader struct {
	backend.RewindReader
	failAt int64
	read   int64
	err    error
}

func (b *brokenRewindReader) Read(p []byte) (int, error) {
	if b.read >= b.failAt {
		return 0, b.err
	}
	if int64(len(p)) > b.failAt-b.read {
		p = p[:b.failAt-b.read]
	}
	n, err := b.RewindReader.Read(p)
	b.read += int64(n)
	if err == io.EOF {
		// The data is shorter than its Length; break here instead.
		err = b.err
	}
	return n, err
}

func (b *brokenRewindReader) Rewind() error {
	b.read = 0
	return b.RewindReader.Rewind()
}
