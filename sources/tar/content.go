package tar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// maxRecorded bounds the header bytes kept for one entry. archive/tar
// refuses PAX and GNU long-name records over 1 MiB; past the bound only
// the order of extended attributes is lost.
const maxRecorded = 4 << 20

// recordingReader counts what it reads and, between start and stop, keeps
// a copy: the header blocks archive/tar parses for one entry.
type recordingReader struct {
	r         io.Reader
	n         int64 // bytes read so far
	eof       bool  // r reported its end
	recording bool
	buf       []byte
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if r.recording && n > 0 && len(r.buf)+n <= maxRecorded {
		r.buf = append(r.buf, p[:n]...)
	}
	if errors.Is(err, io.EOF) {
		r.eof = true
	}
	return n, err
}

func (r *recordingReader) start() {
	r.recording = true
	r.buf = r.buf[:0]
}

// stop ends recording and returns the bytes read since start; they are
// valid until the next start.
func (r *recordingReader) stop() []byte {
	r.recording = false
	if cap(r.buf) > 64<<10 {
		// One huge PAX header must not pin its buffer for the whole walk.
		b := r.buf
		r.buf = nil
		return b
	}
	return r.buf
}

// content is the data of one regular file entry while it is visited.
type content struct {
	w    *walker
	size int64

	spool  *spool  // nil unless hard links are served from the spool
	extent *extent // where this file's copy goes in the spool

	mu     sync.Mutex
	opened bool
	over   bool  // Visit returned: the stream has moved on
	err    error // the first error reading the archive
}

// open hands out the content once, during Visit.
func (c *content) open(context.Context) (io.ReadCloser, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.over:
		return nil, errors.New("tar: content read after its entry was visited (the stream has moved on)")
	case c.opened:
		return nil, errors.New("tar: content opened twice (a stream can be read once)")
	}
	c.opened = true
	return &contentReader{c: c}, nil
}

// read reads the entry's data from the archive, copying it to the spool.
func (c *content) read(p []byte) (int, error) {
	n, err := c.w.tr.Read(p)
	if n > 0 && c.extent != nil {
		if werr := c.spool.write(c.extent, p[:n]); werr != nil {
			// A full disk costs the hard links to this file (reported
			// when they come), not the backup.
			c.extent.err = werr
			c.extent = nil
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		if c.err == nil {
			c.err = c.w.streamError("read content of "+quote(c.w.last), err)
		}
		// Never hand archive/tar's bare io.ErrUnexpectedEOF (a truncated
		// stream) to the reader: callers of io.ReadFull, restic's chunker
		// among them, take it for a short last read and read again, for
		// ever. The wrapped error still matches it with errors.Is.
		return n, c.err
	}
	return n, err
}

// done ends the visit: later Opens and reads fail.
func (c *content) done() {
	c.mu.Lock()
	c.over = true
	c.mu.Unlock()
}

// finish reads what the visitor left unread (through the spool, so that
// its copy is whole) and reports a broken archive, which the visitor may
// have taken for one unreadable file: the walk must fail instead.
func (c *content) finish() error {
	if c.err == nil && c.extent != nil {
		buf := make([]byte, 32<<10)
		for {
			_, err := c.read(buf)
			if err != nil {
				break
			}
		}
	}
	if c.err != nil {
		c.w.atEOF = c.w.in.eof
		return c.err
	}
	if c.extent != nil {
		c.extent.complete = c.extent.size == c.size
	}
	return nil
}

type contentReader struct{ c *content }

func (r *contentReader) Read(p []byte) (int, error) {
	r.c.mu.Lock()
	over := r.c.over
	r.c.mu.Unlock()
	if over {
		return 0, errors.New("tar: content read after its entry was visited (the stream has moved on)")
	}
	return r.c.read(p)
}

func (r *contentReader) Close() error { return nil }

// spool keeps the content of regular files for hard links, in an unlinked
// temporary file: it takes disk space while the walk runs and leaves
// nothing behind.
type spool struct {
	f   *os.File
	end int64
}

// extent is one file's copy in the spool.
type extent struct {
	off, size int64
	complete  bool  // the whole content was copied
	err       error // why it was not
}

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "cairn-tar-links-")
	if err != nil {
		return nil, fmt.Errorf("tar: create spool for hard-linked content: %w", err)
	}
	// Unlinked at once: the space is freed when the file is closed, even
	// if the process dies.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("tar: create spool for hard-linked content: %w", err)
	}
	return &spool{f: f}, nil
}

func (s *spool) begin() *extent { return &extent{off: s.end} }

func (s *spool) write(e *extent, p []byte) error {
	if _, err := s.f.WriteAt(p, e.off+e.size); err != nil {
		return fmt.Errorf("tar: spool content for hard links: %w", err)
	}
	e.size += int64(len(p))
	s.end = e.off + e.size
	return nil
}

// opener returns an Open for a hard link to the spooled file.
func (s *spool) opener(e *extent, name string) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(&spoolReaderAt{s: s, name: name}, e.off, e.size)), nil
	}
}

// spoolReaderAt names the link in read errors.
type spoolReaderAt struct {
	s    *spool
	name string
}

func (r *spoolReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.s.f.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("read spooled content for hard link %s: %w", r.name, err)
	}
	return n, err
}

func (s *spool) close() { s.f.Close() }
