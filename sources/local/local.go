package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"

	"github.com/cairn-backup/cairn/sources"
)

// Options configure a Source. The zero value is ready to use.
type Options struct {
	// Hostname is what Info reports; "" means os.Hostname().
	Hostname string
	// Workers is how many goroutines list directories and lstat entries
	// ahead of the visitor. 0 means GOMAXPROCS+1: the work is mostly
	// waiting in system calls, so one more than the cores keeps them busy.
	Workers int
	// ReadAhead bounds how many directories are prepared before the
	// visitor reaches them (their entries are held in memory until then).
	// 0 means 64.
	ReadAhead int
}

// ApplyDefaults returns o with zero fields set to their defaults.
func (o Options) ApplyDefaults() Options {
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0) + 1
	}
	if o.ReadAhead <= 0 {
		o.ReadAhead = 64
	}
	return o
}

// Source is a set of local paths to back up. It is safe for concurrent use;
// each Walk is independent.
type Source struct {
	targets []string // as given
	cwd     string   // working directory when New ran: relative targets are relative to it
	info    sources.Info
	opts    Options
	owners  *owners
	closed  atomic.Bool
}

var _ sources.Source = (*Source)(nil)

// everything is what a local Linux source fills in.
const everything = sources.HasInode | sources.HasDeviceID | sources.HasLinks | sources.HasChangeTime |
	sources.HasAccessTime | sources.HasOwnerNames | sources.HasXattrs | sources.HasSubsecondTimes | sources.HasDevices

// New returns a source for the given targets: files or directories,
// absolute or relative to the working directory, laid out in the snapshot
// the way restic lays them out. Every target must exist; use Existing
// first for restic's behaviour of skipping missing targets with a warning.
func New(targets []string, opts Options) (*Source, error) {
	if len(targets) == 0 {
		return nil, errors.New("local source: no targets")
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("local source: working directory: %w", err)
	}
	s := &Source{targets: append([]string(nil), targets...), cwd: cwd, opts: opts.ApplyDefaults(), owners: newOwners()}
	for _, t := range targets {
		if t == "" {
			return nil, errors.New("local source: empty target")
		}
		if _, err := os.Lstat(t); err != nil {
			return nil, fmt.Errorf("local source: target %w", err)
		}
		s.info.Paths = append(s.info.Paths, s.abs(t))
	}
	s.info.Hostname = opts.Hostname
	if s.info.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("local source: host name: %w", err)
		}
		s.info.Hostname = h
	}
	s.info.Has = everything
	return s, nil
}

// abs makes p absolute against the working directory New saw, cleaned, as
// filepath.Abs would have then: the walk must not depend on where the
// process has moved since.
func (s *Source) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(s.cwd, p)
}

// Existing returns the targets that exist, in order, and an error for each
// one that does not or cannot be looked at. restic's backup skips those
// with a warning (and exits with code 3), and fails when none is left.
func Existing(targets []string) (existing []string, missing []error) {
	for _, t := range targets {
		if _, err := os.Lstat(t); err != nil {
			missing = append(missing, fmt.Errorf("target %w", err))
			continue
		}
		existing = append(existing, t)
	}
	return existing, missing
}

// Info describes the source. Paths are the targets made absolute, in the
// order given (duplicates included, as restic records them).
func (s *Source) Info() sources.Info {
	info := s.info
	info.Paths = append([]string(nil), s.info.Paths...)
	return info
}

// Close ends the source: later Walk and Open calls fail.
func (s *Source) Close() error {
	s.closed.Store(true)
	return nil
}

// errClosed is returned after Close.
var errClosed = fmt.Errorf("local source: %w", fs.ErrClosed)
