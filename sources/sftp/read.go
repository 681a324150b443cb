package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/pkg/sftp"

	"github.com/cairn-backup/cairn/sources"
)

// blockSize is what one ReadAt asks for: pkg/sftp splits it into 32 KiB
// requests sent at once, so one block costs one round trip.
const blockSize = 256 << 10

var blockPool = sync.Pool{New: func() any { b := make([]byte, blockSize); return &b }}

// opener returns Entry.Open for the regular file at host, listed with size
// bytes.
func (s *Source) opener(host string, size int64) func(context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		if s.closed.Load() {
			return nil, errClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, err := s.client.OpenFile(host, os.O_RDONLY)
		if err != nil {
			if err := s.lost(err); errors.Is(err, ErrConnectionLost) {
				return nil, fmt.Errorf("open %s: %w", host, err)
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%w: open %s: %w", sources.ErrVanished, host, err)
			}
			return nil, &fs.PathError{Op: "open", Path: host, Err: err}
		}
		// Several blocks in flight: RequestsPerFile 32 KiB requests in all.
		window := max(1, s.cfg.RequestsPerFile*32<<10/blockSize)
		rctx, cancel := context.WithCancel(ctx)
		return &reader{src: s, f: f, name: host, size: size, window: window, ctx: rctx, cancel: cancel}, nil
	}
}

// reader reads a remote file front to back with several blocks requested
// ahead, delivering them in order, until a block comes back short (the end
// of the file, wherever it is now: a file that grew since it was listed is
// read to its new end, as restic would). Blocks are sized to the listed
// size plus one byte, so a small file costs a single request that also
// sees the end. Memory is bounded by window blocks.
type reader struct {
	src    *Source
	f      *sftp.File
	name   string
	size   int64 // as listed
	window int
	ctx    context.Context // ends the reads in flight on Close
	cancel context.CancelFunc

	next   int64    // offset of the next block to request
	grew   bool     // a block past the listed size came back full
	eof    bool     // a short block was seen: request nothing more
	queue  []*block // requested blocks, in file order
	cur    []byte   // unread part of the current block
	curBuf *[]byte  // the current block's buffer, for the pool
	err    error    // sticky
	wg     sync.WaitGroup
}

// block is one ReadAt in flight.
type block struct {
	buf  *[]byte
	off  int64
	want int // bytes asked for
	n    int
	err  error
	done chan struct{}
}

var _ io.ReadCloser = (*reader)(nil)

// issue requests blocks until the window is full or the end is near.
func (r *reader) issue() {
	for !r.eof && len(r.queue) < r.window && (r.next <= r.size || r.grew) {
		want := blockSize
		if !r.grew && r.size+1-r.next < int64(want) {
			want = int(r.size + 1 - r.next)
		}
		off := r.next
		b := &block{buf: blockPool.Get().(*[]byte), off: off, want: want, done: make(chan struct{})}
		r.next += int64(want)
		r.queue = append(r.queue, b)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer close(b.done)
			if err := r.ctx.Err(); err != nil {
				b.err = err
				return
			}
			b.n, b.err = r.f.ReadAt((*b.buf)[:b.want], off)
		}()
		if r.grew {
			break // past the listed size, one block at a time
		}
	}
}

// Read returns the file's bytes in order.
func (r *reader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.release()
		if r.eof {
			r.err = io.EOF
			continue
		}
		r.issue()
		if len(r.queue) == 0 {
			r.err = io.EOF
			continue
		}
		b := r.queue[0]
		select {
		case <-b.done:
		case <-r.ctx.Done():
			r.err = r.ctx.Err()
			continue
		}
		r.queue = r.queue[1:]
		r.curBuf, r.cur = b.buf, (*b.buf)[:b.n]
		switch {
		case b.err != nil && !errors.Is(b.err, io.EOF):
			r.err = &fs.PathError{Op: "read", Path: r.name, Err: r.src.lost(b.err)}
			if errors.Is(b.err, context.Canceled) || errors.Is(b.err, context.DeadlineExceeded) {
				r.err = b.err
			}
			r.cur = nil
		case b.n < b.want:
			r.eof = true
		case b.off+int64(b.want) > r.size:
			// A full block reaching past the listed size: the file grew.
			r.grew = true
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// release returns the current block's buffer once it is consumed.
func (r *reader) release() {
	if r.curBuf != nil {
		blockPool.Put(r.curBuf)
		r.curBuf, r.cur = nil, nil
	}
}

// Close stops the reads in flight and closes the remote file.
func (r *reader) Close() error {
	if r.f == nil {
		return nil
	}
	r.cancel()
	r.wg.Wait()
	r.release()
	for _, b := range r.queue {
		blockPool.Put(b.buf)
	}
	r.queue = nil
	err := r.f.Close()
	r.f = nil
	if err != nil && !errors.Is(err, fs.ErrClosed) {
		return &fs.PathError{Op: "close", Path: r.name, Err: err}
	}
	return nil
}
