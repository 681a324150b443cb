package stdin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/sources"
)

// DefaultFilename is the file name restic uses when --stdin-filename is not
// given.
const DefaultFilename = "stdin"

// ErrEmpty is the read error for a stream that ended before yielding a
// single byte (restic's "no data read").
var ErrEmpty = errors.New("no data read")

// Options describe the file a stream becomes. The zero value means
// restic's defaults.
type Options struct {
	// Filename is the file's path in the snapshot (restic's
	// --stdin-filename), default "stdin". Slashes make directories;
	// leading slashes, "." and ".." are cleaned away like restic does.
	Filename string
	// Time is the file's modification, access and change time; default
	// the time the source is created. restic uses the snapshot time
	// (--time), so pass that.
	Time time.Time
	// Hostname is the host the source reports; default os.Hostname().
	Hostname string
	// Stderr receives the command's standard error one line at a time,
	// without the newline (FromCommand only; it may be called from another
	// goroutine). nil passes it to this process's standard error.
	Stderr func(line string)
}

// Source is a stream backed up as one file. It can be walked once.
type Source struct {
	name string // cleaned path without the leading slash
	opts Options
	uid  uint32
	gid  uint32

	// open starts reading; it is called once, by the file's Open.
	open func(ctx context.Context) (io.ReadCloser, error)
	cmd  *command // nil for a plain reader

	mu     sync.Mutex
	walked bool
	opened bool
}

var _ sources.Source = (*Source)(nil)

// New returns a source that backs up everything r yields (normally
// os.Stdin) as one file. Reads stop when the walk's context is cancelled,
// even while r blocks.
func New(r io.Reader, opts Options) (*Source, error) {
	if r == nil {
		return nil, errors.New("stdin: no reader")
	}
	s, err := newSource(opts)
	if err != nil {
		return nil, err
	}
	s.open = func(ctx context.Context) (io.ReadCloser, error) {
		return &nonEmptyReader{rc: newCtxReader(ctx, r), name: s.hostPath()}, nil
	}
	return s, nil
}

func newSource(opts Options) (*Source, error) {
	if opts.Filename == "" {
		opts.Filename = DefaultFilename
	}
	name := strings.TrimPrefix(path.Clean("/"+opts.Filename), "/")
	if name == "" {
		return nil, fmt.Errorf("stdin: invalid file name %q", opts.Filename)
	}
	if strings.ContainsRune(name, 0) {
		return nil, fmt.Errorf("stdin: file name %q contains a NUL byte", opts.Filename)
	}
	if opts.Time.IsZero() {
		opts.Time = time.Now()
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	return &Source{name: name, opts: opts, uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}, nil
}

func (s *Source) hostPath() string { return "/" + s.name }

// Info reports the snapshot path "/<filename>". The source fills no
// optional metadata and delivers its content as a stream.
func (s *Source) Info() sources.Info {
	return sources.Info{
		Hostname: s.opts.Hostname,
		Paths:    []string{s.hostPath()},
		Has:      sources.HasSubsecondTimes,
		Streamed: true,
	}
}

// Walk visits the directories of the file name, then the file. The
// content must be read during the file's Visit. For a command, Walk then
// waits for it and fails if it failed. Exclude options do not apply: the
// file is the backup's only target.
func (s *Source) Walk(ctx context.Context, opts sources.WalkOptions, v sources.Visitor) error {
	s.mu.Lock()
	if s.walked {
		s.mu.Unlock()
		return errors.New("stdin: the stream can be backed up only once")
	}
	s.walked = true
	s.mu.Unlock()

	if s.cmd != nil {
		if err := s.cmd.start(ctx); err != nil {
			return err
		}
	}
	err := s.visit(ctx, v)
	if s.cmd != nil {
		// Even when the walk failed, the command must not outlive it.
		if cerr := s.cmd.finish(ctx); err == nil {
			err = cerr
		}
	}
	return err
}

func (s *Source) visit(ctx context.Context, v sources.Visitor) error {
	parts := strings.Split(s.name, "/")
	for i := 1; i < len(parts); i++ {
		dir := strings.Join(parts[:i], "/")
		if err := v.Visit(ctx, s.entry(dir, sources.Dir, fs.ModeDir|0o755)); err != nil {
			return err
		}
	}
	file := s.entry(s.name, sources.File, 0o644)
	file.Size = -1 // unknown until read; also never "unchanged" against a parent
	file.Open = s.openOnce
	if err := v.Visit(ctx, file); err != nil {
		return err
	}
	for i := len(parts) - 1; i >= 1; i-- {
		if err := v.LeaveDir(ctx, strings.Join(parts[:i], "/")); err != nil {
			return err
		}
	}
	return v.LeaveDir(ctx, "")
}

func (s *Source) entry(p string, t sources.Type, mode fs.FileMode) *sources.Entry {
	tm := s.opts.Time
	return &sources.Entry{
		Path: p, HostPath: "/" + p, Type: t, Mode: mode,
		ModTime: tm, AccessTime: tm, ChangeTime: tm,
		UID: s.uid, GID: s.gid,
	}
}

// openOnce hands out the stream the first time and fails afterwards: a
// stream cannot be read twice.
func (s *Source) openOnce(ctx context.Context) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened {
		return nil, fmt.Errorf("%s: the stream was already read", s.hostPath())
	}
	s.opened = true
	return s.open(ctx)
}

// Close stops a command that is still running. It does not close the
// reader given to New, which belongs to the caller.
func (s *Source) Close() error {
	if s.cmd != nil {
		return s.cmd.kill()
	}
	return nil
}

// nonEmptyReader turns an immediate end of the stream into ErrEmpty.
type nonEmptyReader struct {
	rc   io.ReadCloser
	name string
	n    int64
	// allowEmpty is set by a command whose failure Walk reports instead.
	allowEmpty func() bool
}

func (r *nonEmptyReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.n += int64(n)
	if errors.Is(err, io.EOF) && r.n == 0 && (r.allowEmpty == nil || !r.allowEmpty()) {
		return n, &fs.PathError{Op: "read", Path: r.name, Err: ErrEmpty}
	}
	return n, err
}

func (r *nonEmptyReader) Close() error { return r.rc.Close() }

// ctxReader reads r in a goroutine, so that a read blocked on a pipe or
// terminal does not keep a cancelled backup waiting: Read returns the
// context's error at once, and the goroutine ends with the next read of r.
type ctxReader struct {
	pr   *io.PipeReader
	stop func() bool
}

func newCtxReader(ctx context.Context, r io.Reader) *ctxReader {
	pr, pw := io.Pipe()
	go func() {
		_, err := io.Copy(pw, r)
		pw.CloseWithError(err) // nil means EOF
	}()
	// Closing the write side makes Read return the cause once buffered
	// data is consumed, and the copy's next write fail.
	stop := context.AfterFunc(ctx, func() { pw.CloseWithError(context.Cause(ctx)) })
	return &ctxReader{pr: pr, stop: stop}
}

func (r *ctxReader) Read(p []byte) (int, error) { return r.pr.Read(p) }

func (r *ctxReader) Close() error {
	r.stop()
	return r.pr.Close()
}
