package tar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/stdin"
)

// DefaultPath is the snapshot path recorded when Options.Paths is empty:
// the archive's root is the snapshot's root.
const DefaultPath = "/"

// Options describe how an archive becomes a snapshot. The zero value
// means: snapshot path "/", synthesised directories stamped with the time
// the source is created, this machine's host name.
type Options struct {
	// Paths are the snapshot's paths: recorded in the snapshot and used to
	// find the parent snapshot (same host, same paths). They label the
	// snapshot and do not move or filter the archive's entries, which keep
	// the place their names give them. Give the directories the archive
	// was made of ("/srv/app" for `tar -cf - /srv/app`) so that snapshots
	// of different streams from one host are told apart. Default ["/"].
	Paths []string
	// Time stamps the directories the archive implies but never lists
	// (modification, access and change time); default the time the source
	// is created. Pass the snapshot time, as sources/stdin does.
	Time time.Time
	// Hostname is the host the source reports; default os.Hostname().
	Hostname string
	// Stderr receives the command's standard error one line at a time
	// (FromCommand only); nil passes it to this process's standard error.
	Stderr func(line string)
}

// Source is a tar stream backed up as a tree of files. It can be walked
// once.
type Source struct {
	opts  Options
	paths []string
	uid   uint32
	gid   uint32
	// stream delivers the archive as the content of its single file; it
	// owns the reader or the command (cancellation, stderr, exit status).
	stream *stdin.Source

	mu     sync.Mutex
	walked bool
}

var _ sources.Source = (*Source)(nil)

// New returns a source that reads the archive from r (normally os.Stdin).
// Reads stop when the walk's context is cancelled, even while r blocks.
func New(r io.Reader, opts Options) (*Source, error) {
	if r == nil {
		return nil, errors.New("tar: no reader")
	}
	s, err := newSource(opts)
	if err != nil {
		return nil, err
	}
	s.stream, err = stdin.New(r, s.streamOptions())
	if err != nil {
		return nil, fmt.Errorf("tar: %w", err)
	}
	return s, nil
}

// FromCommand returns a source that runs argv when it is walked and reads
// the archive from its standard output (`ssh host tar -cf - /srv/app`).
// argv[0] is looked up in PATH and the arguments are passed as they are,
// without a shell. The walk fails, and with it the backup, if the command
// cannot be started or exits with an error, even when the archive it
// wrote looked complete.
func FromCommand(argv []string, opts Options) (*Source, error) {
	s, err := newSource(opts)
	if err != nil {
		return nil, err
	}
	s.stream, err = stdin.FromCommand(argv, s.streamOptions())
	if err != nil {
		return nil, fmt.Errorf("tar: %w", err)
	}
	return s, nil
}

func newSource(opts Options) (*Source, error) {
	if opts.Time.IsZero() {
		opts.Time = time.Now()
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	paths := opts.Paths
	if len(paths) == 0 {
		paths = []string{DefaultPath}
	}
	clean := make([]string, 0, len(paths))
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
			return nil, fmt.Errorf("tar: snapshot path %q must be absolute", p)
		}
		clean = append(clean, path.Clean(p))
	}
	return &Source{opts: opts, paths: clean, uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}, nil
}

func (s *Source) streamOptions() stdin.Options {
	return stdin.Options{Filename: "archive.tar", Time: s.opts.Time, Hostname: s.opts.Hostname, Stderr: s.opts.Stderr}
}

// Info reports the configured snapshot paths. A tar stream carries
// sub-second times (PAX), owner names, extended attributes and device
// numbers, but no inode numbers, link counts or device IDs, so a backup
// compares size, modification time and mode with the parent snapshot.
func (s *Source) Info() sources.Info {
	return sources.Info{
		Hostname: s.opts.Hostname,
		Paths:    append([]string(nil), s.paths...),
		Has:      sources.HasSubsecondTimes | sources.HasOwnerNames | sources.HasXattrs | sources.HasDevices,
		Streamed: true,
	}
}

// Walk reads the archive and visits its entries in archive order. A
// regular file's content must be read during its Visit; what the visitor
// leaves unread is skipped. The walk fails on a malformed or truncated
// archive, on an archive without its end-of-archive marker, and, for
// FromCommand, when the command fails. Entries that cannot be stored
// safely (names with "..", hard links to unknown entries) are reported
// to WalkOptions.OnError and left out.
func (s *Source) Walk(ctx context.Context, opts sources.WalkOptions, v sources.Visitor) error {
	s.mu.Lock()
	if s.walked {
		s.mu.Unlock()
		return errors.New("tar: the stream can be backed up only once")
	}
	s.walked = true
	s.mu.Unlock()

	w := newWalker(s, opts, v)
	defer w.close()
	// The archive is the stream's single file. The adapter keeps the
	// archive's own error instead of returning it, so that the stream's
	// Walk still reports how a command ended: for a truncated archive,
	// "ssh exited with status 255" says more than "unexpected EOF".
	a := &streamAdapter{w: w}
	serr := s.stream.Walk(ctx, sources.WalkOptions{}, a)
	switch {
	case !a.visited && serr == nil:
		return errors.New("tar: the stream delivered no archive (internal error)")
	case a.err != nil && serr != nil && w.atEOF:
		// The command ended on its own and failed: its failure is the
		// cause, the broken archive the symptom.
		return fmt.Errorf("%w (the archive it wrote is unusable: %v)", serr, a.err)
	case a.err != nil:
		return a.err
	case serr != nil:
		return serr
	}
	return v.LeaveDir(ctx, "")
}

// Close stops a command that is still running. It does not close the
// reader given to New.
func (s *Source) Close() error { return s.stream.Close() }

// streamAdapter receives the stream source's single file and walks the
// archive in it.
type streamAdapter struct {
	w       *walker
	visited bool
	err     error
}

func (a *streamAdapter) Visit(ctx context.Context, e *sources.Entry) error {
	if e.Type != sources.File {
		return nil
	}
	a.visited = true
	rc, err := e.Open(ctx)
	if err != nil {
		a.err = fmt.Errorf("tar: open stream: %w", err)
		return nil
	}
	defer rc.Close()
	a.err = a.w.walk(ctx, rc)
	return nil
}

func (a *streamAdapter) LeaveDir(context.Context, string) error { return nil }
